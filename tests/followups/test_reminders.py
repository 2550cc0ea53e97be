"""Reminders and confirmations end to end on the embedded service: a booking's events reach the
follow-ups consumer as the relay publishes them, sends wait on the `followups` queue for their
time (manual clock), and the embedded channel records what ACS would have sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.kernel.times import parse_stamp
from shared.runtime import Runtime
from tests.followups.harness import (
    FRIDAY_1300,
    FRIDAY_1400,
    PATIENT_DOC,
    book,
    cancel,
    deliver,
    deliver_new,
    events,
    fu_runtime,
    ledger_events,
    outbox,
    pump,
    records,
    reschedule,
    world,
)

__all__ = ["fu_runtime", "world"]


def advance_to(clock: ManualClock, stamp: str, seconds: float = 0) -> None:
    clock.set(parse_stamp(stamp) + timedelta(seconds=seconds))


async def test_a_booking_is_confirmed_at_once_and_reminded_once_per_offset_never_early(
    world: Runtime, clock: ManualClock
) -> None:
    appointment_id = await book()
    await deliver_new(world)
    assert await pump(world) == 1
    sent = await outbox(world)
    assert [(s["purpose"], s["channel"], s["to"]) for s in sent] == [("confirmation", "sms", "+48601000001")]
    assert "Dr. Anna Nowak" in sent[0]["text"]
    found = await records(world)
    reminders = {k: v for k, v in found.items() if v["purpose"] == "reminder"}
    assert {v["occasion"]: v["due"] for v in reminders.values()} == {
        "P1D": "2026-01-08T12:00:00.000Z",
        "PT2H": "2026-01-09T10:00:00.000Z",
    }
    advance_to(clock, "2026-01-08T12:00:00.000Z", -10)
    assert await pump(world) == 0, "a reminder never goes before it is due"
    advance_to(clock, "2026-01-08T12:00:00.000Z")
    assert await pump(world) == 1
    reminder = (await outbox(world))[-1]
    assert reminder["purpose"] == "reminder"
    assert reminder["subjectId"] == appointment_id
    assert set(reminder["links"]) == {"confirm", "cancel"}  # an SMS carries the two one-tap answers
    assert all(url.startswith("https://psc.example.org/api/links/") for url in reminder["links"].values())
    assert all(url in reminder["text"] for url in reminder["links"].values())
    advance_to(clock, FRIDAY_1300, -7200)
    assert await pump(world) == 1
    assert [s["purpose"] for s in await outbox(world)] == ["confirmation", "reminder", "reminder"]
    sent_events = [e for e in await ledger_events(world) if e["eventType"] == "notification.sent"]
    assert [e["data"]["purpose"] for e in sent_events] == ["confirmation", "reminder", "reminder"]
    for event in sent_events:
        assert set(event["data"]) <= {
            "notificationId",
            "patientId",
            "purpose",
            "kind",
            "channel",
            "subjectId",
            "sentAt",
            "providerId",
        }
        assert event["data"]["sentAt"]


async def test_redelivered_events_and_sends_change_nothing(world: Runtime, clock: ManualClock) -> None:
    await book()
    booked = await events(world)
    await deliver(booked)
    kept: list[dict[str, Any]] = []
    await pump(world, keep=kept)
    advance_to(clock, "2026-01-08T12:00:00.000Z")
    await pump(world, keep=kept)
    before = (await outbox(world), await records(world), await ledger_events(world))
    await deliver(booked)  # the event again
    assert await pump(world) == 0
    from tests.followups.harness import message, registered_functions

    sender = registered_functions()["followup_send"].get_user_function()
    for body in kept:  # every send again
        await sender(message(body, "again", 2))
    after = (await outbox(world), await records(world), await ledger_events(world))
    assert after == before


async def test_a_rescheduled_appointments_old_reminders_never_go(world: Runtime, clock: ManualClock) -> None:
    appointment_id = await book()
    await deliver_new(world)
    kept: list[dict[str, Any]] = []
    await pump(world)
    assert (await reschedule(appointment_id, FRIDAY_1400)).status == 200
    await deliver_new(world)
    await pump(world)
    assert [s["text"].split(":")[0] for s in await outbox(world)] == ["Booked", "Moved"]
    found = await records(world)
    old = [v for v in found.values() if v["purpose"] == "reminder" and v["subjectVersion"] == 1]
    assert {v["status"] for v in old} == {"cancelled"}
    new = sorted(v["due"] for v in found.values() if v["purpose"] == "reminder" and v["subjectVersion"] > 1)
    for due in new:
        advance_to(clock, due)
        await pump(world, keep=kept)
    reminders = [s for s in await outbox(world) if s["purpose"] == "reminder"]
    versions = {int(s["notificationId"].split(":")[2]) for s in reminders}
    assert len(reminders) == 2
    assert versions == {max(v["subjectVersion"] for v in found.values())}, "only the new version's"
    # A send of the old version that slipped through (its cancellation lost) is dropped at send time.
    from shared.followups.handler import reminder_id
    from tests.followups.harness import message, registered_functions

    sender = registered_functions()["followup_send"].get_user_function()
    stale = reminder_id(appointment_id, 1, "P1D")
    await sender(message({"notificationId": stale, "patientId": "p-1", "due": found[stale]["due"]}, "late"))
    assert len([s for s in await outbox(world) if s["purpose"] == "reminder"]) == 2


async def test_a_cancellation_cancels_pending_reminders_and_is_confirmed(
    world: Runtime, clock: ManualClock
) -> None:
    appointment_id = await book()
    await deliver_new(world)
    await pump(world)
    assert (await cancel(appointment_id)).status == 200
    await deliver_new(world)
    await pump(world)
    clock.set(parse_stamp(FRIDAY_1300))
    await pump(world)
    assert [s["text"].split(":")[0] for s in await outbox(world)] == ["Booked", "Cancelled"]
    statuses = {
        v["occasion"]: v["status"] for v in (await records(world)).values() if v["purpose"] == "reminder"
    }
    assert statuses == {"P1D": "cancelled", "PT2H": "cancelled"}


async def test_a_failed_channel_falls_back_once_to_the_next(world: Runtime, clock: ManualClock) -> None:
    # A number ACS refuses per recipient: the confirmation goes by e-mail instead.
    await world.store.container("patients").upsert({**PATIENT_DOC, "phone": "0601000001"})
    await book()
    await deliver_new(world)
    await pump(world)
    sent = await outbox(world)
    assert [(s["channel"], s["to"]) for s in sent] == [("email", "anna@example.org")]
    record = next(v for v in (await records(world)).values() if v["purpose"] == "confirmation")
    assert [(a["channel"], a["outcome"], a.get("reason")) for a in record["attempts"]] == [
        ("sms", "failed", "invalid-recipient"),
        ("email", "accepted", None),
    ]


async def test_when_both_channels_fail_the_notification_fails_after_one_fallback(world: Runtime) -> None:
    await world.store.container("patients").upsert(
        {**PATIENT_DOC, "phone": "0601000001", "email": "not-an-address"}
    )
    await book()
    await deliver_new(world)
    await pump(world)
    assert await outbox(world) == []
    record = next(v for v in (await records(world)).values() if v["purpose"] == "confirmation")
    assert record["status"] == "failed"
    assert len(record["attempts"]) == 2
    failed = [e for e in await ledger_events(world) if e["eventType"] == "notification.failed"]
    assert len(failed) == 1


async def test_the_preferred_channel_goes_first_when_the_policy_allows_it(world: Runtime) -> None:
    await world.store.container("patients").upsert({**PATIENT_DOC, "preferredChannel": "email"})
    await book()
    await deliver_new(world)
    await pump(world)
    assert [s["channel"] for s in await outbox(world)] == ["email"]


async def test_the_portal_channel_writes_an_inbox_item(world: Runtime) -> None:
    await world.store.container("patients").upsert(
        {**PATIENT_DOC, "preferredChannel": "portal", "consent": {"sms": False, "email": False}}
    )
    await book()
    await deliver_new(world)
    await pump(world)
    assert await outbox(world) == []
    from tests.conftest import stored_items

    inbox = [i for i in await stored_items(world, "notifications") if i.get("type") == "inbox"]
    assert [(i["purpose"], i["subject"].split(":")[0]) for i in inbox] == [
        ("confirmation", "Your appointment is booked")
    ]


@pytest.mark.parametrize("crash", ["after-send"])
async def test_a_crash_between_send_and_record_never_sends_twice(
    world: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, crash: str
) -> None:
    from shared.followups import dispatcher

    real = dispatcher._sent
    calls = {"n": 0}

    async def dies_once(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker killed between the send and its record")
        await real(*args, **kwargs)

    monkeypatch.setattr(dispatcher, "_sent", dies_once)
    await book()
    await deliver_new(world)
    bus: Any = world.bus
    from tests.followups.harness import message, registered_functions

    sender = registered_functions()["followup_send"].get_user_function()
    received = await bus.receive("followups")
    import json

    body = json.loads(received[0].body)
    with pytest.raises(RuntimeError):
        await sender(message(body, received[0].message_id))
    await bus.abandon("followups", received[0].lock_token)
    clock.advance(seconds=30)
    assert await pump(world) == 1  # the redelivery
    assert len(await outbox(world)) == 1
    record = next(v for v in (await records(world)).values() if v["purpose"] == "confirmation")
    assert record["status"] == "sent"
    assert len(record["attempts"]) == 1


async def test_a_reminder_over_the_daily_cap_is_skipped_with_its_reason(
    world: Runtime, clock: ManualClock
) -> None:
    first = await book(FRIDAY_1300)
    second = await book(FRIDAY_1400)
    await deliver_new(world)
    await pump(world)
    clock.set(parse_stamp("2026-01-08T13:00:00.000Z"))
    await pump(world)
    found = await records(world)
    day_before = {v["subjectId"]: v for v in found.values() if v["occasion"] == "P1D"}
    assert day_before[first]["status"] == "sent"
    assert (day_before[second]["status"], day_before[second]["reason"]) == ("skipped", "cap")
    confirmations = [v for v in found.values() if v["purpose"] == "confirmation"]
    assert {v["status"] for v in confirmations} == {"sent"}, "confirmations are never capped"


async def test_a_patients_own_quiet_hours_win_and_move_a_reminder_to_their_end(world: Runtime) -> None:
    await world.store.container("patients").upsert(
        {**PATIENT_DOC, "quietHours": {"start": "12:30", "end": "14:00"}}
    )
    await book()
    await deliver_new(world)
    day_before = next(v for v in (await records(world)).values() if v["occasion"] == "P1D")
    assert day_before["due"] == "2026-01-08T13:00:00.000Z"  # 14:00 in Warsaw, not 13:00


async def test_an_offset_already_past_at_booking_is_skipped_with_its_reason(
    world: Runtime, clock: ManualClock
) -> None:
    clock.set(parse_stamp("2026-01-08T14:00:00.000Z"))
    await book()
    await deliver_new(world)
    found = {v["occasion"]: v for v in (await records(world)).values() if v["purpose"] == "reminder"}
    assert (found["P1D"]["status"], found["P1D"]["reason"]) == ("skipped", "past")
    assert found["PT2H"]["status"] == "scheduled"


async def test_a_merged_appointments_reminders_go_to_the_surviving_patient_only(
    world: Runtime, clock: ManualClock
) -> None:
    """A provisional patient merged into another (the appointment moves, `appointment.merged`):
    the old patient's pending reminders are cancelled, the survivor gets the reminders still ahead
    on its own number, no new confirmation, and a late send of an old reminder is dropped."""
    from shared.followups.handler import reminder_id
    from shared.scheduling.merge import move_patient_appointments
    from tests.followups.harness import message, registered_functions

    appointment_id = await book()
    await deliver_new(world)
    await pump(world)  # the booking's confirmation, to p-1
    survivor = {**PATIENT_DOC, "id": "p-2", "phone": "+48601000002", "email": "b@example.org"}
    await world.store.container("patients").upsert(survivor)
    assert await move_patient_appointments(world.store, clock, "p-1", "p-2") == 1
    merged = await deliver_new(world)
    assert [e["type"] for e in merged] == ["appointment.merged"]
    await deliver(merged)  # redelivered: changes nothing
    old = {k: v for k, v in (await records(world)).items() if v["purpose"] == "reminder"}
    assert {v["status"] for v in old.values()} == {"cancelled"}
    new = await records(world, "p-2")
    assert {v["purpose"] for v in new.values()} == {"reminder"}, "no confirmation: the patient did nothing"
    assert {v["occasion"] for v in new.values()} == {"P1D", "PT2H"}
    for due in sorted(v["due"] for v in new.values()):
        advance_to(clock, due)
        await pump(world)
    sender = registered_functions()["followup_send"].get_user_function()
    stale = reminder_id(appointment_id, 1, "PT2H")
    await sender(message({"notificationId": stale, "patientId": "p-1", "due": old[stale]["due"]}, "late"))
    sent = await outbox(world)
    assert [(s["purpose"], s["patientId"], s["to"]) for s in sent] == [
        ("confirmation", "p-1", "+48601000001"),
        ("reminder", "p-2", "+48601000002"),
        ("reminder", "p-2", "+48601000002"),
    ]


def test_the_followups_subscription_lets_in_every_event_the_consumer_handles() -> None:
    from shared.followups.handler import HANDLED
    from shared.kernel.catalog import EVENTS_TOPIC, FOLLOWUPS_SUBSCRIPTION, TOPICS

    [spec] = [s for s in TOPICS[EVENTS_TOPIC].subscriptions if s.name == FOLLOWUPS_SUBSCRIPTION]
    assert set(spec.subjects) == HANDLED
