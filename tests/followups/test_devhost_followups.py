"""Follow-ups through the real dev host (`python -m devhost` in a subprocess: the function app, the
embedded store, bus and notification channel; tests/followups/followups_host.py adds the crash
hook): a reminder a few seconds ahead, planned from a booking made through the HTTP API, read
back through `GET /api/dev/outbox` and the notification records in the store file.

Reminders come due seconds after the booking: the policy's offset is the appointment's start
minus a few seconds from now (offsets are ISO 8601 durations to the second)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.auth.dev_tokens import issue_dev_token
from shared.kernel.catalog import CONTAINERS, NOTIFICATION_REPORTS_QUEUE, NOTIFICATIONS, QUEUES
from shared.kernel.clock import SystemClock
from shared.kernel.documents import Query, where
from shared.kernel.messages import OutgoingMessage
from tests.devhost.host_process import HostProcess
from tests.devhost.outbox_host import probe_topics

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
PATIENT_ID = "p-fu"
PHONE = "+48601000001"
EVERY_DAY = {d: [["00:00", "23:55"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
PROVIDER = {
    "name": "Dr. Anna Nowak",
    "specialty": "cardiology",
    "timeZone": "UTC",
    "slotMinutes": 5,
    "weeklyHours": EVERY_DAY,
    "bookingRules": {"maxDaysAhead": 2, "minNoticeMinutes": 0},
}
CHANNELS = ["sms", "email", "portal"]
NO_QUIET = {"start": "00:00", "end": "00:00"}  # equal ends: no quiet hours


PENDING = ("scheduled", "sending")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bearer(sub: str, *roles: str, patient_id: str | None = None) -> dict[str, str]:
    secret = SAMPLE["PSC_DEV_JWT_SECRET"]
    jwt = issue_dev_token(secret, sub=sub, roles=list(roles), patient_id=patient_id, ttl_seconds=3600)
    return {"Authorization": f"Bearer {jwt}"}


ADMIN = bearer("admin-1", "Administrator")
PATIENT = bearer("patient-sub-fu", "Patient", patient_id=PATIENT_ID)


class Host(HostProcess):
    """One dev host process on `data_dir` and `port`; restartable on the same data."""

    async def start(self, *, die: str = "", settings: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PSC_", "COSMOS", "ServiceBus"))}
        env.update(SAMPLE)
        env.update(settings or {})
        env["PSC_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{self.port}"
        env["FOLLOWUPS_HOST_DIE"] = die
        env["OUTBOX_HOST_STALL"] = ""
        await self.spawn("tests.followups.followups_host", "--realtime-port", "0", "--no-demo-week", env=env)


async def died_after_the_channel_accepted(host: Host, appointment: str) -> str:
    """The host (started with `die="reminder"`) exits with 137 once the channel accepted the
    appointment's reminder and before its outcome is recorded; the reminder's id."""
    accepted = await host.wait_for(lambda line: line.startswith("accepted "), 30)
    assert await host.wait() == 137
    nid = accepted.split()[1]
    assert nid.startswith(f"reminder:{appointment}:1:")
    [record] = await records(host.data_dir, "reminder")
    assert record["status"] == "sending", "the host died before the outcome was recorded"
    return nid


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    host = Host(tmp_path / "data", _free_port())
    yield host
    await host.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def ok(response: Any, *codes: int) -> dict[str, Any]:
    answer = await response
    assert answer.status_code in (codes or (200, 201)), answer.text
    return answer.json() if answer.content else {}


async def world(
    client: httpx.AsyncClient,
    api: str,
    *,
    patient: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
) -> None:
    """A provider open every day in UTC, the patient (SMS first, consented), the reminder policy."""
    await ok(client.put(f"{api}/manage/providers/dr-fu", json=PROVIDER, headers=ADMIN))
    body = {
        "name": "Anna Kowalska",
        "language": "en",
        "timeZone": "UTC",
        "phone": PHONE,
        "email": "anna@example.org",
        "preferredChannel": "sms",
        "consent": {"sms": True, "email": True},
        **(patient or {}),
    }
    await ok(client.put(f"{api}/patients/{PATIENT_ID}", json=body, headers=ADMIN))
    if policy is not None:
        await ok(client.put(f"{api}/manage/reminder-policy", json=policy, headers=ADMIN))


async def slot(client: httpx.AsyncClient, api: str, after: timedelta, skip: int = 0) -> datetime:
    """A free slot of the provider starting at least `after` from now (the `skip`-th after it)."""
    today = datetime.now(UTC).date()
    window = {"from": today.isoformat(), "to": (today + timedelta(days=2)).isoformat()}
    found = await ok(client.get(f"{api}/providers/dr-fu/slots", params=window, headers=PATIENT))
    earliest = datetime.now(UTC) + after
    starts = [datetime.fromisoformat(s["start"].replace("Z", "+00:00")) for s in found["slots"]]
    return [s for s in starts if s >= earliest][skip]


def offset_for(start: datetime, lead: float) -> str:
    """The offset that makes a reminder of `start` due `lead` seconds from now."""
    return f"PT{int((start - datetime.now(UTC)).total_seconds() - lead)}S"


def reminding(start: datetime, lead: float, **more: Any) -> dict[str, Any]:
    """A reminder policy whose one reminder of `start` is due `lead` seconds from now."""
    return {"offsets": [offset_for(start, lead)], "channels": CHANNELS, "quietHours": NO_QUIET, **more}


def zulu(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def book(client: httpx.AsyncClient, api: str, start: datetime) -> str:
    body = {"providerId": "dr-fu", "start": zulu(start), "reason": "Check-up"}
    return str((await ok(client.post(f"{api}/appointments", json=body, headers=PATIENT), 201))["id"])


async def outbox(client: httpx.AsyncClient, api: str, purpose: str | None = None) -> list[dict[str, Any]]:
    found = await ok(client.get(f"{api}/dev/outbox", params={"patientId": PATIENT_ID}, headers=ADMIN))
    return [i for i in found["items"] if purpose is None or i["purpose"] == purpose]


async def records(data_dir: Path, purpose: str | None = None) -> list[dict[str, Any]]:
    """The patient's notification records, as the dispatcher left them (read from the store file)."""
    store = SqliteDocumentStore(data_dir / "store.sqlite3", CONTAINERS, SystemClock())
    try:
        page = await store.container(NOTIFICATIONS).query(
            Query((where("type", "=", "notification"),)), partition_key=PATIENT_ID, max_items=100
        )
        return [r for r in page.items if purpose is None or r["purpose"] == purpose]
    finally:
        await store.close()


async def until(check: Callable[[], Any], timeout: float = 20) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.25)
        return found


async def test_a_host_killed_between_the_send_and_its_record_never_sends_the_reminder_twice(
    host: Host, client: httpx.AsyncClient
) -> None:
    """The embedded channel accepts the reminder (it is in the outbox) and the host dies before
    the dispatcher records the outcome; the host restarted on the same data receives the send
    again, repeats the same send, which the channel answers with its first answer: the reminder
    is in the outbox once and its record ends sent."""
    await host.start(die="reminder")
    await world(client, host.api)
    start = await slot(client, host.api, timedelta(minutes=10))
    policy = reminding(start, 6)
    await ok(client.put(f"{host.api}/manage/reminder-policy", json=policy, headers=ADMIN))
    appointment = await book(client, host.api, start)

    await died_after_the_channel_accepted(host, appointment)

    await host.start()
    sent = await until(lambda: _settled(host.data_dir, "reminder"))
    await asyncio.sleep(1.0)  # a second copy would show by now
    reminders = await outbox(client, host.api, "reminder")
    assert [(r["subjectId"], r["channel"], r["to"]) for r in reminders] == [(appointment, "sms", PHONE)]
    assert {"confirm", "cancel"} <= set(reminders[0]["links"])  # the SMS's one-use links
    # The embedded channel's delivery report may settle the record before the test reads it.
    assert sent["status"] in ("sent", "delivered")
    assert [a["channel"] for a in sent["attempts"]] == ["sms"]


@pytest.mark.parametrize("channel", ["sms", "email"])
async def test_a_host_killed_after_acs_accepted_a_reminder_sends_it_once_through_acs(
    host: Host, client: httpx.AsyncClient, channel: str
) -> None:
    """The real ACS adapter and SDKs under the dispatcher, against the recording ACS stand-in on
    loopback: the stand-in accepts the reminder (202) and the host dies before the dispatcher
    records it; the host restarted on the same data repeats the same request (same repeatability
    id and first-sent time, same text and links), which reaches the stand-in and is answered with
    the first answer, as ACS does inside its repeatability window: the stand-in sent the reminder
    once, and the record ends sent with the first send's message id."""
    from devhost.acs_standin import AcsStandIn
    from shared.kernel.notify import email_operation_id, sms_repeatability_id

    standin = AcsStandIn()
    with standin.running() as endpoint:
        acs = {"PSC_NOTIFY": "acs", "ACS__endpoint": endpoint}
        await host.start(die="reminder", settings=acs)
        await world(client, host.api, patient={"preferredChannel": channel})
        start = await slot(client, host.api, timedelta(minutes=10))
        await ok(client.put(f"{host.api}/manage/reminder-policy", json=reminding(start, 6), headers=ADMIN))
        appointment = await book(client, host.api, start)

        nid = await died_after_the_channel_accepted(host, appointment)
        first = [s for s in standin.sent if _of(s, nid)]
        assert len(first) == 1, "the stand-in accepted the reminder before the host died"

        await host.start(settings=acs)
        sent = await until(lambda: _settled(host.data_dir, "reminder"))
        await asyncio.sleep(1.0)  # a second copy would show by now

    assert [s for s in standin.sent if _of(s, nid)] == first, "sent once"
    assert first[0].channel == channel
    assert first[0].to == (PHONE if channel == "sms" else "anna@example.org")
    if channel == "sms":
        repeats = [
            (r["repeatabilityRequestId"], r["repeatabilityFirstSent"])
            for q in standin.requests
            if q.path == "/sms"
            for r in q.body["smsRecipients"]
            if r["repeatabilityRequestId"] == sms_repeatability_id(nid)
        ]
    else:
        repeats = [
            (q.headers.get("repeatability-request-id"), q.headers.get("repeatability-first-sent"))
            for q in standin.requests
            if q.path == "/emails:send" and q.headers.get("operation-id") == email_operation_id(nid)
        ]
    # The restarted host repeated the very request (the same repeatability id and first-sent time),
    # which reached the stand-in and was answered with the first answer, not sent again.
    assert len(repeats) >= 2
    assert len(set(repeats)) == 1
    assert sent["status"] == "sent"
    attempts = [(a["channel"], a["providerMessageId"]) for a in sent["attempts"]]
    assert attempts == [(channel, first[0].provider_id)]


def _of(sent: Any, nid: str) -> bool:
    """Whether the stand-in's `sent` is the notification `nid` (the SMS's tag, the e-mail's id)."""
    from shared.kernel.notify import email_operation_id

    if sent.channel == "sms":
        return bool(sent.tag == f"{PATIENT_ID}|{nid}")
    return bool(sent.provider_id == email_operation_id(nid))


async def _settled(data_dir: Path, purpose: str, *, moved: bool = False) -> dict[str, Any] | None:
    """The first record of `purpose` that is settled (`moved`: of a version after the first)."""
    found = await records(data_dir, purpose)
    return next(
        (r for r in found if r["status"] not in PENDING and r["subjectVersion"] > int(moved)),
        None,
    )


async def test_a_rescheduled_appointments_old_reminder_never_goes(
    host: Host, client: httpx.AsyncClient
) -> None:
    """Booked with a reminder due in 8 s, then moved 5 minutes later before it is due (the policy
    changed in between: the moved appointment's reminder is due a few seconds after the old one
    was): only the new version's reminder arrives, and the first is recorded cancelled."""
    await host.start()
    await world(client, host.api)
    first = await slot(client, host.api, timedelta(minutes=20))
    moved = first + timedelta(minutes=5)
    policy = reminding(first, 8)
    await ok(client.put(f"{host.api}/manage/reminder-policy", json=policy, headers=ADMIN))
    appointment = await book(client, host.api, first)
    await until(lambda: records(host.data_dir, "reminder"))
    policy["offsets"] = [offset_for(moved, 12)]
    await ok(client.put(f"{host.api}/manage/reminder-policy", json=policy, headers=ADMIN))
    await ok(
        client.post(
            f"{host.api}/appointments/{appointment}/reschedule", json={"start": zulu(moved)}, headers=PATIENT
        )
    )
    record = await until(lambda: _settled(host.data_dir, "reminder", moved=True), timeout=25)
    await asyncio.sleep(1.0)  # a late copy of the old one would show by now
    reminders = await outbox(client, host.api, "reminder")
    assert [r["id"].split(":", 1)[1] for r in reminders] == [record["notificationId"]]
    assert record["notificationId"].startswith(f"reminder:{appointment}:")
    old = [r for r in await records(host.data_dir, "reminder") if r["subjectVersion"] == 1]
    assert [(r["status"], r["reason"]) for r in old] == [("cancelled", "superseded")]


async def inbound_sms(data_dir: Path, event_id: str, text: str) -> None:
    """An inbound SMS as Event Grid delivers it to the `notification-reports` queue (the bus file
    the dev host reads; Event Grid sets the message id to the event id)."""
    event = {
        "id": event_id,
        "topic": "/embedded/providers/Microsoft.Communication/communicationServices/psc-embedded",
        "subject": f"/phonenumber/{PHONE.lstrip('+')}",
        "data": {
            "messageId": f"Incoming_{event_id}",
            "from": PHONE,
            "to": SAMPLE["ACS_SMS_FROM"],
            "message": text,
            "receivedTimestamp": zulu(datetime.now(UTC)),
        },
        "eventType": "Microsoft.Communication.SMSReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": zulu(datetime.now(UTC)),
    }
    bus = SqliteMessageBus(data_dir / "bus.sqlite3", QUEUES, SystemClock(), topics=probe_topics())
    try:
        await bus.send(
            NOTIFICATION_REPORTS_QUEUE,
            OutgoingMessage(
                body=json.dumps(event).encode(),
                message_id=event_id,
                application_properties={"aeg-event-type": "Notification", "aeg-delivery-count": 0},
            ),
        )
    finally:
        await bus.close()


async def test_stop_then_start_by_sms_withdraws_and_restores_sms_consent(
    host: Host, client: httpx.AsyncClient
) -> None:
    await host.start()
    await world(client, host.api)

    async def consent() -> dict[str, Any]:
        found = await ok(client.get(f"{host.api}/patients/{PATIENT_ID}", headers=ADMIN))
        return dict(found["consent"])

    await inbound_sms(host.data_dir, "in-1", "STOP")
    await until(lambda: _consent_is(consent, sms=False))
    await inbound_sms(host.data_dir, "in-2", "Start")
    await until(lambda: _consent_is(consent, sms=True))
    assert (await consent())["email"] is True, "only SMS consent follows the keywords"


async def _consent_is(read: Callable[[], Any], *, sms: bool) -> bool:
    return bool((await read())["sms"] is sms)


async def test_a_patient_whose_sms_is_not_delivered_gets_the_reminder_by_email_once(
    host: Host, client: httpx.AsyncClient
) -> None:
    """A number that can never receive (North America's fictional 555-01XX): the channel accepts
    the SMS and its delivery report says Failed; the reminder falls back to e-mail, once."""
    await host.start()
    fictional = "+12025550123"
    await world(client, host.api, patient={"phone": fictional})
    start = await slot(client, host.api, timedelta(minutes=10))
    policy = reminding(start, 5)
    await ok(client.put(f"{host.api}/manage/reminder-policy", json=policy, headers=ADMIN))
    await book(client, host.api, start)
    record = await until(lambda: _delivered(host.data_dir), timeout=25)
    await asyncio.sleep(1.0)  # a third send would show by now
    reminders = await outbox(client, host.api, "reminder")
    assert [(r["channel"], r["to"]) for r in reminders] == [("sms", fictional), ("email", "anna@example.org")]
    attempts = [(a["channel"], a["outcome"]) for a in record["attempts"]]
    assert attempts == [("sms", "failed"), ("email", "delivered")]
    [final] = await records(host.data_dir, "reminder")
    assert final["status"] == "delivered"


async def _delivered(data_dir: Path) -> dict[str, Any] | None:
    return next((r for r in await records(data_dir, "reminder") if r["status"] == "delivered"), None)


async def test_a_survey_after_a_closed_conversation_arrives_and_is_answered_once(
    host: Host, client: httpx.AsyncClient
) -> None:
    """The patient escalated, an agent accepted and closed the conversation: the survey policy's
    short delay later its link is in the outbox; the survey reads, answers once, and a second
    answer is 409."""
    await host.start()
    await world(client, host.api, policy={"channels": CHANNELS, "quietHours": NO_QUIET})
    surveys = {"afterConversation": {"enabled": True, "delay": "PT3S"}, "capDays": 30}
    await ok(client.put(f"{host.api}/manage/survey-policy", json=surveys, headers=ADMIN))
    # No wrap-up: the conversation is closed (conversation.closed) when the agent closes it.
    queue = {"name": "Surveys", "acceptTimeoutSeconds": 3600, "wrapupSeconds": 0}
    await ok(client.put(f"{host.api}/manage/queues/fu", json=queue, headers=ADMIN))
    rules = {"rules": [], "fallbackQueueId": "fu"}
    await ok(client.put(f"{host.api}/manage/routing-rules", json=rules, headers=ADMIN))
    agent = {"name": "agent-fu", "capacity": 5, "queues": ["fu"], "languages": ["en"]}
    await ok(client.put(f"{host.api}/manage/agents/agent-fu", json=agent, headers=ADMIN))
    as_agent = bearer("agent-fu", "Agent")
    await ok(client.put(f"{host.api}/agents/me/presence", json={"status": "available"}, headers=as_agent))
    escalation = {
        "botConversationId": "bot-fu-1",
        "patient": {"id": PATIENT_ID, "name": "Anna Kowalska", "language": "en"},
        "reason": "Billing question",
        "triage": {"urgency": "routine"},
        "transcript": [{"from": "patient", "text": "hello", "timestamp": "2026-01-05T09:00:00Z"}],
    }
    bot = bearer("fu-bot", "Bot.Escalate")
    conversation = (await ok(client.post(f"{host.api}/escalations", json=escalation, headers=bot), 202))[
        "conversationId"
    ]

    async def accepted() -> bool:
        answer = await client.post(f"{host.api}/conversations/{conversation}/accept", headers=as_agent)
        return answer.status_code == 200

    await until(accepted)
    await ok(client.post(f"{host.api}/conversations/{conversation}/close", json={}, headers=as_agent))

    async def survey_sent() -> list[dict[str, Any]]:
        return await outbox(client, host.api, "survey")

    [sent] = await until(survey_sent, timeout=20)
    assert (sent["subjectId"], sent["channel"]) == (conversation, "sms")
    url = sent["links"]["survey"]
    questions = await ok(client.get(url))
    assert [q["id"] for q in questions["questions"]] == ["csat", "nps", "comment"]
    await ok(client.post(url, json={"csat": 5, "nps": 9}))
    second = await client.post(url, json={"csat": 1, "nps": 0})
    assert second.status_code == 409, second.text
    await asyncio.sleep(1.0)  # a second survey would show by now
    assert len(await outbox(client, host.api, "survey")) == 1


async def test_over_the_daily_cap_the_second_reminder_is_skipped(
    host: Host, client: httpx.AsyncClient
) -> None:
    """A cap of one follow-up a day and two reminders due seconds apart: the first arrives, the
    second is recorded skipped with the reason `cap` and never sent."""
    await host.start()
    await world(client, host.api)
    start = await slot(client, host.api, timedelta(minutes=10))
    policy = reminding(start, 5, cap={"perDay": 1, "perWeek": 3})
    policy["offsets"].append(offset_for(start, 9))
    await ok(client.put(f"{host.api}/manage/reminder-policy", json=policy, headers=ADMIN))
    await book(client, host.api, start)

    async def both_settled() -> list[dict[str, Any]]:
        found = await records(host.data_dir, "reminder")
        return found if len(found) == 2 and not any(r["status"] in PENDING for r in found) else []

    settled = sorted(await until(both_settled, timeout=25), key=lambda r: r["due"])
    await asyncio.sleep(1.0)
    assert [r["status"] for r in settled] in (["sent", "skipped"], ["delivered", "skipped"])
    assert settled[1]["reason"] == "cap"
    reminders = await outbox(client, host.api, "reminder")
    assert [r["id"].split(":", 1)[1] for r in reminders] == [settled[0]["notificationId"]]


async def test_a_reminder_due_in_the_patients_quiet_hours_waits_for_their_end(
    host: Host, client: httpx.AsyncClient
) -> None:
    """The patient's own quiet hours cover now and end at a whole minute one to two minutes from
    now (quiet hours are HH:MM), before the appointment: the reminder due in a few seconds is
    planned for the end of the quiet period and has not gone when its first due time passes.
    (Its arrival at that minute is the planner's and the bus's; waiting for it would take up to
    two minutes.)"""
    now = datetime.now(UTC)
    end = (now + timedelta(minutes=2)).replace(second=0, microsecond=0)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": end.strftime("%H:%M")}
    await host.start()
    await world(client, host.api, patient={"quietHours": quiet})
    start = await slot(client, host.api, timedelta(minutes=10))
    await ok(client.put(f"{host.api}/manage/reminder-policy", json=reminding(start, 5), headers=ADMIN))
    await book(client, host.api, start)
    [record] = await until(lambda: records(host.data_dir, "reminder"))
    assert (record["status"], record["due"]) == ("scheduled", zulu(end))
    await asyncio.sleep(8)  # past the due time the offset alone would give
    assert await outbox(client, host.api, "reminder") == []
    [record] = await records(host.data_dir, "reminder")
    assert record["status"] == "scheduled"
