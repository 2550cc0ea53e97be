"""`python -m ops` for topic subscriptions: depths, dead-letter listing and resubmission through the
topic, on the embedded bus and (with recording fakes of the SDK) on Service Bus."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from ops.cli import main
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.kernel.clock import SystemClock
from shared.kernel.messages import DeadLetterAdmin, OutgoingMessage, QueueSpec, SubscriptionSpec, TopicSpec
from tests.unit.test_servicebus_adapter import NOW, FakeReceived
from tests.unit.test_servicebus_topics import Harness

QUEUES = {"routing": QueueSpec("routing", "ROUTING_QUEUE")}
TOPICS = {
    "events": TopicSpec(
        "events",
        "EVENTS_TOPIC",
        subscriptions=(
            SubscriptionSpec("reminders", "REMINDERS_SUB", subjects=("booked",)),
            SubscriptionSpec("ordered", "ORDERED_SUB", requires_session=True),
        ),
    )
}
REMINDERS = "events/subscriptions/reminders"
ORDERED = "events/subscriptions/ordered"
SECRET_BODY = b'{"patientName": "Jane Roe"}'


def bus_at(path: Path) -> SqliteMessageBus:
    return SqliteMessageBus(path, QUEUES, SystemClock(), topics=TOPICS)


async def _prepare(path: Path) -> int:
    bus = bus_at(path)
    try:
        await bus.send(
            "events",
            OutgoingMessage(body=SECRET_BODY, message_id="agg-1:1.0", subject="booked", session_id="agg-1"),
        )
        await bus.send(
            "events",
            OutgoingMessage(body=b"{}", message_id="agg-1:2.0", subject="booked", session_id="agg-1"),
        )
        await bus.schedule(
            "events",
            OutgoingMessage(body=b"{}", message_id="later", subject="booked", session_id="agg-2"),
            SystemClock().now() + timedelta(hours=1),
        )
        (got, _) = await bus.receive(REMINDERS, max_messages=2)
        await bus.dead_letter(REMINDERS, got.lock_token, "ValidationFailed", "appointment id missing")
        return got.sequence_number
    finally:
        await bus.close()


def run(path: Path, *argv: str) -> tuple[int, str, str]:
    @asynccontextmanager
    async def admin() -> AsyncIterator[DeadLetterAdmin]:
        bus = bus_at(path)
        try:
            yield bus
        finally:
            await bus.close()

    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), queues=QUEUES, topics=TOPICS, admin=admin, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def bus_file(tmp_path: Path) -> Path:
    return tmp_path / "bus.sqlite3"


def test_queues_shows_queues_topics_and_each_subscription(bus_file: Path) -> None:
    asyncio.run(_prepare(bus_file))

    status, out, _ = run(bus_file, "queues")

    assert status == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows == {
        "routing": ["0", "0", "0"],
        "events": ["0", "1", "0"],  # the scheduled message waits at the topic
        REMINDERS: ["1", "0", "1"],
        ORDERED: ["2", "0", "0"],
    }


def test_a_subscriptions_dead_letters_are_listed_and_peeked_without_bodies(bus_file: Path) -> None:
    sequence = asyncio.run(_prepare(bus_file))

    status, out, _ = run(bus_file, "deadletters", "list", REMINDERS)
    peek_status, peeked, _ = run(bus_file, "deadletters", "peek", REMINDERS)

    assert (status, peek_status) == (0, 0)
    assert f"{sequence}\tagg-1:1.0\tValidationFailed" in out
    assert "appointment id missing" in peeked
    assert "Jane Roe" not in out + peeked


def test_a_resubmitted_subscription_dead_letter_goes_back_through_the_topic(bus_file: Path) -> None:
    sequence = asyncio.run(_prepare(bus_file))

    status, out, _ = run(bus_file, "deadletters", "resubmit", REMINDERS, str(sequence))

    assert status == 0
    assert f"{sequence}: resubmitted" in out

    async def after() -> tuple[list[str], int]:
        bus = bus_at(bus_file)
        try:
            received = [m.message_id for m in await bus.receive(REMINDERS, max_messages=5)]
            (ordered,) = await bus.depths([ORDERED])
            return received, ordered.active
        finally:
            await bus.close()

    received, ordered_active = asyncio.run(after())
    assert sorted(received) == ["agg-1:1.0"]  # agg-1:2.0 is still locked by its first receive
    assert ordered_active == 3  # the other subscription got the copy too; its consumer ignores a known id


def test_an_unknown_subscription_is_refused_naming_the_catalogue(bus_file: Path) -> None:
    status, _, err = run(bus_file, "deadletters", "list", "events/subscriptions/nope")

    assert status == 2
    assert "events/subscriptions/nope" in err
    assert REMINDERS in err


def test_on_service_bus_resubmit_all_scans_the_subscription_once_and_sends_to_the_topic() -> None:
    harness = Harness()
    harness.client.dead_letters.extend(
        FakeReceived(n, f"agg-1:{n}.0", enqueued_time_utc=NOW - timedelta(hours=2)) for n in (3, 4)
    )

    @asynccontextmanager
    async def admin() -> AsyncIterator[DeadLetterAdmin]:
        yield harness.bus

    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["deadletters", "resubmit", "events/subscriptions/notify", "--all"],
        queues={"routing": QueueSpec("routing", "ROUTING_QUEUE")},
        topics={
            "events": TopicSpec("events", "EVENTS_TOPIC", subscriptions=(SubscriptionSpec("notify", "N"),))
        },
        admin=admin,
        out=out,
        err=err,
    )

    assert status == 0, err.getvalue()
    assert "resubmitted 2 message(s)" in out.getvalue()
    sent = harness.client.senders["topic:events-prod"].sent
    assert [m.message_id for m in sent] == ["agg-1:3.0", "agg-1:4.0"]
