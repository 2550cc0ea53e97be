"""The reminder delivery rate from the events the real follow-ups write (booking, the `followups`
queue, the embedded channel's delivery reports), counted by the real `kpi_events` consumer: each
reminder once in the denominator, delivered once if any channel delivered it; a fallback after a
non-delivery report and a portal (inbox) reminder; redelivering every event changes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.kernel.clock import ManualClock
from shared.kernel.times import parse_stamp
from shared.kpis.api import kpi_range
from shared.runtime import Runtime
from tests.conftest import registered_functions
from tests.followups.harness import (
    PATIENT_DOC,
    book,
    deliver_new,
    events,
    fu_runtime,
    pump,
    pump_reports,
    records,
    world,
)
from tests.history.support import topic_message

__all__ = ["fu_runtime", "world"]

THURSDAY_REMINDER = "2026-01-08T12:00:00.000Z"  # P1D before Friday 13:00 Warsaw
FRIDAY_REMINDER = "2026-01-09T10:00:00.000Z"  # PT2H before
WEEK = (
    datetime.fromisoformat("2026-01-05T00:00:00+00:00"),
    datetime.fromisoformat("2026-01-12T00:00:00+00:00"),
)


async def patient(runtime: Runtime, **changes: Any) -> None:
    await runtime.store.container("patients").upsert({**PATIENT_DOC, **changes})


async def remind(runtime: Runtime, clock: ManualClock, due: str) -> None:
    """The reminder due at `due` goes; 20 minutes later (another 15-minute bucket) its delivery
    report arrives, and a fallback it causes goes at once."""
    clock.set(parse_stamp(due))
    await pump(runtime)
    clock.advance(20 * 60)
    await pump_reports(runtime)
    await pump(runtime)
    await pump_reports(runtime)


async def count(runtime: Runtime, envelopes: list[dict[str, Any]]) -> dict[str, Any]:
    handler = registered_functions()["kpi_events"].get_user_function()
    for envelope in envelopes:
        await handler(topic_message(envelope))
    answer = await kpi_range(runtime.store, *WEEK, "1d")
    return dict(answer["totals"])


def reminder_events(envelopes: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in envelopes if e["type"] == kind and e["data"]["purpose"] == "reminder"]


async def test_a_reminder_that_fell_back_counts_once_and_delivered_and_a_failed_one_undelivered(
    world: Runtime, clock: ManualClock
) -> None:
    # The fictional 555-01XX number accepts the SMS and then reports non-delivery (the embedded
    # channel does what ACS does); the e-mail is delivered.
    await patient(world, phone="+12025550123")
    await book()
    await deliver_new(world)
    await pump(world)
    await pump_reports(world)
    await pump(world)
    await pump_reports(world)
    await remind(world, clock, THURSDAY_REMINDER)
    # On Friday the e-mail address cannot receive either: the reminder fails after one fallback.
    await patient(world, phone="+12025550123", email="anna@example.invalid")
    await remind(world, clock, FRIDAY_REMINDER)

    found = {r["occasion"]: r for r in (await records(world)).values() if r["purpose"] == "reminder"}
    assert [(a["channel"], a["outcome"]) for a in found["P1D"]["attempts"]] == [
        ("sms", "failed"),
        ("email", "delivered"),
    ]
    assert (found["P1D"]["status"], found["PT2H"]["status"]) == ("delivered", "failed")
    assert found["P1D"]["sentAt"] == THURSDAY_REMINDER, "the first send's time, kept by the fallback"

    envelopes = await events(world, "notifications")
    sent = reminder_events(envelopes, "notification.sent")
    # Each reminder's SMS and, after its non-delivery report, its e-mail: four sends, two reminders.
    assert len(sent) == 4
    assert {e["data"]["sentAt"] for e in sent} == {THURSDAY_REMINDER, FRIDAY_REMINDER}
    assert [e["data"].get("fallback") for e in sent] == [None, True, None, True]
    assert len(reminder_events(envelopes, "notification.delivered")) == 1
    assert len(reminder_events(envelopes, "notification.failed")) == 1

    totals = await count(world, envelopes)
    assert totals["reminderDeliveryRate"] == 0.5  # 1 of 2 reminders, not 1 of 4 sends
    assert await count(world, envelopes) == totals, "every event redelivered changes nothing"
    assert await count(world, list(reversed(envelopes))) == totals


async def test_a_portal_reminder_is_delivered_when_it_is_stored_in_the_inbox(
    world: Runtime, clock: ManualClock
) -> None:
    await patient(world, preferredChannel="portal", consent={"sms": False, "email": False})
    await book()
    await deliver_new(world)
    await pump(world)
    await remind(world, clock, THURSDAY_REMINDER)

    found = [
        r for r in (await records(world)).values() if r["purpose"] == "reminder" and r["occasion"] == "P1D"
    ]
    assert [(r["status"], r["channel"]) for r in found] == [("delivered", "portal")]
    envelopes = await events(world, "notifications")
    delivered = reminder_events(envelopes, "notification.delivered")
    assert [(e["data"]["channel"], e["at"]) for e in delivered] == [("portal", THURSDAY_REMINDER)]
    totals = await count(world, envelopes)
    assert totals["reminderDeliveryRate"] == 1.0
    assert await count(world, envelopes) == totals
    clock.advance(3600)
    await pump(world)
    assert await count(world, await events(world, "notifications")) == totals, "nothing more to count"
