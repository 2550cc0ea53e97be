"""The embedded channel: every message it would send is recorded in `outbox` (one patient's
partition) with status `sent`, and the delivery report ACS would publish arrives on the
`notification-reports` queue. A notification is never recorded or reported twice: not when
repeated, not when repeated concurrently from two workers, not after a worker died between the
record and the report; and it meets ACS's repeatability window as ACS would."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.embedded_notify import OUTBOX, REPORTS_QUEUE, EmbeddedNotifier
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.kernel.notify import Envelope, SendResult, email_operation_id, split_tag
from shared.notifications.reports import DeliveryReport, parse_report
from shared.runtime import Runtime, build_runtime

REPO_ROOT = Path(__file__).resolve().parents[2]
DIED = 17
LINKS = {"confirm": "https://psc.example/l/c1", "cancel": "https://psc.example/l/x1"}
SMS_FROM = "+18005550100"
SENDER = "DoNotReply@psc.example.org"


def notifier(runtime: Runtime, **senders: str | None) -> EmbeddedNotifier:
    chosen = {"sms_from": SMS_FROM, "email_sender": SENDER, **senders}
    return EmbeddedNotifier(runtime.store, runtime.bus, runtime.clock, **chosen)


def envelope(clock: ManualClock, notification_id: str = "reminder:a-1:24h", **kw: Any) -> Envelope:
    values: dict[str, Any] = {
        "patient_id": "p-1",
        "purpose": "reminder",
        "subject_id": "a-1",
        "first_attempt_at": clock.now(),
        "links": LINKS,
        **kw,
    }
    return Envelope(notification_id, **values)


async def outbox(runtime: Runtime, patient_id: str = "p-1") -> list[dict[str, Any]]:
    page = await runtime.store.container(OUTBOX).query(Query(), partition_key=patient_id)
    return page.items


async def reports(runtime: Runtime) -> list[Any]:
    received = await runtime.bus.receive(REPORTS_QUEUE, max_messages=50)  # type: ignore[attr-defined]
    return [parse_report(m.body) for m in received]


async def test_an_sms_is_recorded_for_the_dev_outbox_and_reported_delivered(
    runtime: Runtime, clock: ManualClock
) -> None:
    sent = await notifier(runtime).send_sms("+48601000001", "Reminder text", envelope=envelope(clock))
    assert sent.accepted
    assert sent.provider_message_id
    assert sent.provider_message_id.startswith("Outgoing_")
    (item,) = await outbox(runtime)
    assert {k: item[k] for k in ("id", "patientId", "purpose", "subjectId", "channel", "to", "text")} == {
        "id": "sms:reminder:a-1:24h",
        "patientId": "p-1",
        "purpose": "reminder",
        "subjectId": "a-1",
        "channel": "sms",
        "to": "+48601000001",
        "text": "Reminder text",
    }
    assert item["links"] == LINKS
    assert item["status"] == "sent"
    assert item["createdAt"] == "2026-01-05T09:00:00.000Z"
    (report,) = await reports(runtime)
    assert isinstance(report, DeliveryReport)
    assert (report.channel, report.outcome, report.provider_message_id) == (
        "sms",
        "delivered",
        sent.provider_message_id,
    )
    assert split_tag(report.tag) == ("p-1", "reminder:a-1:24h")


async def test_an_email_is_recorded_with_its_operation_id_and_reported(
    runtime: Runtime, clock: ManualClock
) -> None:
    sent = await notifier(runtime).send_email(
        "anna@example.org", "Subject", "Body", "<p>Body</p>", envelope=envelope(clock)
    )
    assert sent == SendResult(True, email_operation_id("reminder:a-1:24h"))
    (item,) = await outbox(runtime)
    assert (item["subject"], item["text"], item["html"], item["from"]) == (
        "Subject",
        "Body",
        "<p>Body</p>",
        SENDER,
    )
    (report,) = await reports(runtime)
    assert isinstance(report, DeliveryReport)
    assert (report.channel, report.outcome, report.provider_message_id) == (
        "email",
        "delivered",
        sent.provider_message_id,
    )


async def test_a_repeat_inside_the_window_answers_the_first_send_and_records_nothing_new(
    runtime: Runtime, clock: ManualClock
) -> None:
    channel = notifier(runtime)
    first = await channel.send_sms("+48601000001", "Text", envelope=envelope(clock))
    clock.advance(minutes=3)
    repeat = envelope(clock, first_attempt_at=clock.now() - timedelta(minutes=3))
    again = await channel.send_sms("+48601000001", "Text", envelope=repeat)
    assert again == first
    assert len(await outbox(runtime)) == 1
    assert len(await reports(runtime)) == 1  # the repeat's report had the same message id: dropped


async def test_an_sms_repeated_after_the_window_is_not_sent_again(
    runtime: Runtime, clock: ManualClock
) -> None:
    channel = notifier(runtime)
    started = envelope(clock)
    await channel.send_sms("+48601000001", "Text", envelope=started)
    clock.advance(minutes=5)
    late = await channel.send_sms("+48601000001", "Text", envelope=started)
    assert late == SendResult(False, None, "outcome-unknown")
    # The same holds for one whose first attempt never got anywhere: ACS could not tell either.
    never_recorded = envelope(clock, "reminder:a-2:24h", first_attempt_at=clock.now() - timedelta(minutes=5))
    lost = await channel.send_sms("+48601000001", "Text", envelope=never_recorded)
    assert lost == SendResult(False, None, "outcome-unknown")
    assert len(await outbox(runtime)) == 1


async def test_an_email_repeated_after_the_window_is_looked_up_by_its_operation_id(
    runtime: Runtime, clock: ManualClock
) -> None:
    channel = notifier(runtime)
    started = envelope(clock)
    first = await channel.send_email("anna@example.org", "S", "T", envelope=started)
    clock.advance(minutes=30)
    assert await channel.send_email("anna@example.org", "S", "T", envelope=started) == first
    # Never recorded (the first attempt died before it reached the channel): sent now.
    died_early = envelope(clock, "survey:c-1", first_attempt_at=clock.now() - timedelta(hours=1))
    fresh = await channel.send_email("anna@example.org", "S", "T", envelope=died_early)
    assert fresh.accepted
    assert len(await outbox(runtime)) == 2


@pytest.mark.parametrize(
    ("kind", "to"),
    [("sms", "0601000001"), ("sms", "+48 601 000 001"), ("email", "not-an-address"), ("email", "a@b")],
)
async def test_a_recipient_acs_would_refuse_is_refused(
    runtime: Runtime, clock: ManualClock, kind: str, to: str
) -> None:
    channel = notifier(runtime)
    if kind == "sms":
        result = await channel.send_sms(to, "Text", envelope=envelope(clock))
    else:
        result = await channel.send_email(to, "S", "T", envelope=envelope(clock))
    assert result == SendResult(False, None, "invalid-recipient")
    assert await outbox(runtime) == []
    assert await reports(runtime) == []


async def test_a_channel_without_a_sender_is_not_configured(runtime: Runtime, clock: ManualClock) -> None:
    channel = notifier(runtime, sms_from=None)
    assert channel.channels == frozenset({"email"})
    result = await channel.send_sms("+48601000001", "Text", envelope=envelope(clock))
    assert result == SendResult(False, None, "channel-not-configured")
    with pytest.raises(ValueError, match="2048"):
        await notifier(runtime).send_sms("+48601000001", "x" * 2049, envelope=envelope(clock))


@pytest.mark.parametrize(("kind", "to"), [("email", "anna@example.invalid"), ("sms", "+12025550142")])
async def test_destinations_that_can_never_receive_get_a_failed_report(
    runtime: Runtime, clock: ManualClock, kind: str, to: str
) -> None:
    channel = notifier(runtime)
    if kind == "sms":
        sent = await channel.send_sms(to, "Text", envelope=envelope(clock))
    else:
        sent = await channel.send_email(to, "S", "T", envelope=envelope(clock))
    assert sent.accepted  # as ACS: accepted, then not delivered
    (report,) = await reports(runtime)
    assert isinstance(report, DeliveryReport)
    assert report.outcome == "failed"


def _send_from_own_runtime(settings: Any, clock: ManualClock, barrier: threading.Barrier) -> SendResult:
    async def run() -> SendResult:
        peer = await build_runtime(settings, clock=clock)
        try:
            barrier.wait()
            return await notifier(peer).send_sms("+48601000001", "Text", envelope=envelope(clock))
        finally:
            await peer.close()

    return asyncio.run(run())


async def test_two_workers_sending_the_same_notification_at_once_record_it_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    barrier = threading.Barrier(4)
    results = await asyncio.gather(
        *(asyncio.to_thread(_send_from_own_runtime, runtime.settings, clock, barrier) for _ in range(4))
    )
    assert len({r.provider_message_id for r in results}) == 1
    assert all(r.accepted for r in results)
    assert len(await outbox(runtime)) == 1
    assert len(await reports(runtime)) == 1


WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    from datetime import datetime

    from shared.kernel.clock import ManualClock
    from shared.runtime import build_runtime
    from tests.conftest import make_settings
    from tests.notifications.test_embedded_channel import envelope, notifier

    data_dir, target, operation = sys.argv[1], sys.argv[2], sys.argv[3]

    async def main():
        clock = ManualClock()
        runtime = await build_runtime(make_settings(data_dir), clock=clock)
        channel = notifier(runtime)
        victim = runtime.bus if target == "bus" else runtime.store.container(target)
        real = getattr(victim, operation)

        async def die(*args, **kwargs):
            os._exit({died})  # gone: no finally, no rollback

        setattr(victim, operation, die)
        await channel.send_sms("+48601000001", "Text", envelope=envelope(clock))

    asyncio.run(main())
    """
).format(died=DIED)


@pytest.mark.parametrize(
    "at",
    [
        pytest.param(("outbox", "create"), id="before-the-record"),
        pytest.param(("bus", "send"), id="before-the-report"),
    ],
)
async def test_a_worker_killed_mid_send_is_mended_by_the_retry_once(
    runtime: Runtime, clock: ManualClock, at: tuple[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(runtime.settings.data_dir), *at],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == DIED, (done.stdout, done.stderr)
    # The queue redelivers the work; the channel is asked again, inside the window.
    clock.advance(seconds=70)
    retried = await notifier(runtime).send_sms(
        "+48601000001", "Text", envelope=envelope(clock, first_attempt_at=clock.now() - timedelta(seconds=70))
    )
    assert retried.accepted
    assert len(await outbox(runtime)) == 1
    (report,) = await reports(runtime)
    assert isinstance(report, DeliveryReport)
    assert report.provider_message_id == retried.provider_message_id
