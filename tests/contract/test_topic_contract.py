"""The topic contract: a topic hands each subscription its own copy of every message its filter
accepts, with its own locks, delivery counts and dead letters; duplicate detection and scheduling
work at the topic. Runs on every bus backend (embedded SQLite; Service Bus when configured).

Subscriptions of the contract topic: `all` (no filter), `booked` (subjects appointment.booked and
appointment.moved) and `ordered` (sessions; see test_session_contract.py). Messages here carry a
session id so `ordered` takes them too; each test drains what it leaves there.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from shared.kernel.errors import Conflict, PayloadTooLarge
from shared.kernel.messages import (
    MAX_MESSAGE_BYTES,
    OutgoingMessage,
    QueueReceiver,
    SessionReceiver,
    split_subscription_entity,
    subscription_entity,
)
from tests.contract.bus_support import (
    admin_of,
    close_to,
    depth,
    receive_exactly,
    receive_one,
    receiver_of,
    sessions_of,
)
from tests.contract.conftest import CONTRACT_TOPICS, BusHarness

TOPIC = "contract-events"
SPEC = CONTRACT_TOPICS[TOPIC]
ALL = subscription_entity(TOPIC, "all")
BOOKED = subscription_entity(TOPIC, "booked")
ORDERED = subscription_entity(TOPIC, "ordered")
WINDOW_SECONDS = SPEC.duplicate_detection_window.total_seconds()


def event(subject: str = "appointment.booked", body: bytes = b"{}", **fields: Any) -> OutgoingMessage:
    fields.setdefault("session_id", f"agg-{uuid.uuid4().hex[:8]}")
    return OutgoingMessage(body=body, message_id=f"contract-{uuid.uuid4()}", subject=subject, **fields)


async def drain_ordered(harness: BusHarness) -> int:
    """Complete whatever the test left in the session subscription (a shared namespace keeps it)."""
    sessions = sessions_of(harness)
    receiver = receiver_of(harness)
    drained = 0
    while (session := await sessions.accept_next_session(ORDERED)) is not None:
        try:
            while batch := await sessions.receive_from_session(session, max_messages=10):
                for got in batch:
                    await receiver.complete(ORDERED, got.lock_token)
                    drained += 1
        finally:
            await sessions.release_session(session)
    return drained


async def test_entity_paths_name_topic_and_subscription() -> None:
    assert ALL == "contract-events/subscriptions/all"
    assert split_subscription_entity(ALL) == (TOPIC, "all")
    assert split_subscription_entity("work") is None
    assert split_subscription_entity("a/subscriptions/b/c") is None


async def test_each_subscription_gets_its_own_copy_of_a_message_its_filter_accepts(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    sent = event("appointment.booked", b'{"id": 1}', application_properties={"version": 3})

    await bus_harness.bus.send(TOPIC, sent)

    in_all = await receive_one(receiver, ALL)
    in_booked = await receive_one(receiver, BOOKED)
    for got in (in_all, in_booked):
        assert got.message_id == sent.message_id
        assert got.body == b'{"id": 1}'
        assert got.subject == "appointment.booked"
        assert got.session_id == sent.session_id
        assert got.application_properties == {"version": 3}
        assert got.delivery_count == 1
    await receiver.complete(ALL, in_all.lock_token)
    await receiver.complete(BOOKED, in_booked.lock_token)
    assert await drain_ordered(bus_harness) == 1


async def test_a_subject_outside_a_subscriptions_filter_never_reaches_it(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    await bus_harness.bus.send(TOPIC, event("appointment.cancelled"))
    await bus_harness.bus.send(TOPIC, event("appointment.moved"))

    in_all = await receive_exactly(receiver, 2, ALL)
    (in_booked,) = await receive_exactly(receiver, 1, BOOKED)

    assert [m.subject for m in in_all] == ["appointment.cancelled", "appointment.moved"]
    assert in_booked.subject == "appointment.moved"
    assert await receiver.receive(BOOKED) == []
    for got in in_all:
        await receiver.complete(ALL, got.lock_token)
    await receiver.complete(BOOKED, in_booked.lock_token)
    await drain_ordered(bus_harness)


async def test_settling_one_subscriptions_copy_leaves_the_others_alone(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    sent = event()
    await bus_harness.bus.send(TOPIC, sent)
    in_all = await receive_one(receiver, ALL)
    in_booked = await receive_one(receiver, BOOKED)

    await receiver.complete(ALL, in_all.lock_token)
    await receiver.abandon(BOOKED, in_booked.lock_token)

    again = await receive_one(receiver, BOOKED)
    assert again.message_id == sent.message_id
    assert again.delivery_count == 2
    assert await receiver.receive(ALL) == []
    await receiver.complete(BOOKED, again.lock_token)
    await drain_ordered(bus_harness)


async def test_a_duplicate_message_id_sent_to_the_topic_inside_the_window_is_dropped(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    first = event(body=b"first")
    await bus_harness.bus.send(TOPIC, first)
    await bus_harness.advance(1)
    await bus_harness.bus.send(
        TOPIC, OutgoingMessage(body=b"second", message_id=first.message_id, subject=first.subject)
    )

    in_all = await receive_one(receiver, ALL)
    await receiver.complete(ALL, in_all.lock_token)

    assert in_all.body == b"first"
    assert await receiver.receive(ALL) == []
    in_booked = await receive_one(receiver, BOOKED)
    await receiver.complete(BOOKED, in_booked.lock_token)
    assert await receiver.receive(BOOKED) == []
    assert await drain_ordered(bus_harness) == 1


async def test_a_batch_to_the_topic_reaches_each_subscription_in_order(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    sent = [event("appointment.booked", f"{i}".encode()) for i in range(4)]

    await bus_harness.bus.send_batch(TOPIC, sent)

    for entity in (ALL, BOOKED):
        received = await receive_exactly(receiver, len(sent), entity)
        assert [m.message_id for m in received] == [m.message_id for m in sent]
        for got in received:
            await receiver.complete(entity, got.lock_token)
    assert await drain_ordered(bus_harness) == len(sent)


async def test_oversized_messages_and_batches_to_a_topic_are_refused_whole(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)

    with pytest.raises(PayloadTooLarge):
        await bus_harness.bus.send(TOPIC, event(body=b"x" * MAX_MESSAGE_BYTES))
    with pytest.raises(PayloadTooLarge):
        await bus_harness.bus.send_batch(TOPIC, [event(body=b"x" * (100 * 1024)) for _ in range(3)])

    assert await receiver.receive(ALL) == []
    assert await drain_ordered(bus_harness) == 0


async def test_a_message_scheduled_on_the_topic_reaches_the_subscriptions_when_due(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    at = bus_harness.clock.now() + timedelta(seconds=30)
    later = event(body=b"later")
    cancelled = event(body=b"never")

    await bus_harness.bus.schedule(TOPIC, later, at)
    sequence = await bus_harness.bus.schedule(TOPIC, cancelled, at)
    await bus_harness.bus.cancel_scheduled(TOPIC, sequence)
    assert await receiver.receive(ALL) == []
    assert (await depth(admin, TOPIC)).scheduled >= 1

    await bus_harness.advance(31)
    got = await receive_one(receiver, ALL)
    assert got.message_id == later.message_id
    assert close_to(got.scheduled_enqueue_time, at)
    await receiver.complete(ALL, got.lock_token)
    assert await receiver.receive(ALL) == []
    in_booked = await receive_one(receiver, BOOKED)
    await receiver.complete(BOOKED, in_booked.lock_token)
    assert await drain_ordered(bus_harness) == 1


async def test_a_subscriptions_dead_letters_are_its_own(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    before = await depth(admin, BOOKED)
    sent = event(body=b"poison")
    await bus_harness.bus.send(TOPIC, sent)

    for attempt in range(1, SPEC.subscription("booked").max_delivery_count + 1):
        got = await receive_one(receiver, BOOKED)
        assert got.delivery_count == attempt
        await receiver.abandon(BOOKED, got.lock_token)

    (dead,) = [d for d in await admin.peek_dead_letters(BOOKED) if d.message_id == sent.message_id]
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert sent.message_id not in [d.message_id for d in await admin.peek_dead_letters(ALL)]
    assert (await depth(admin, BOOKED)).dead_letter - before.dead_letter == 1
    in_all = await receive_one(receiver, ALL)
    assert in_all.delivery_count == 1
    await receiver.complete(ALL, in_all.lock_token)
    await drain_ordered(bus_harness)


async def test_a_resubmitted_subscription_dead_letter_goes_back_through_the_topic(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    sent = event(body=b"retry me")
    await bus_harness.bus.send(TOPIC, sent)
    in_all = await receive_one(receiver, ALL)
    await receiver.complete(ALL, in_all.lock_token)
    got = await receive_one(receiver, BOOKED)
    await receiver.dead_letter(BOOKED, got.lock_token, "DownstreamDown")
    await drain_ordered(bus_harness)
    (dead,) = [d for d in await admin.peek_dead_letters(BOOKED) if d.message_id == sent.message_id]

    await bus_harness.advance(WINDOW_SECONDS + 1)
    await admin.resubmit_dead_letter(BOOKED, dead.sequence_number)

    assert sent.message_id not in [d.message_id for d in await admin.peek_dead_letters(BOOKED)]
    again = await receive_one(receiver, BOOKED)
    assert (again.message_id, again.body, again.delivery_count) == (sent.message_id, b"retry me", 1)
    await receiver.complete(BOOKED, again.lock_token)
    # Service Bus cannot send to one subscription: the others see the same message id again, and
    # consumers idempotent by message id ignore it.
    copy = await receive_one(receiver, ALL)
    assert copy.message_id == sent.message_id
    await receiver.complete(ALL, copy.lock_token)
    await drain_ordered(bus_harness)


async def test_depths_answer_for_topics_and_subscriptions(bus_harness: BusHarness) -> None:
    admin = admin_of(bus_harness)

    depths = await admin.depths([TOPIC, ALL, BOOKED, ORDERED])

    assert [d.queue for d in depths] == [TOPIC, ALL, BOOKED, ORDERED]
    assert depths[0].dead_letter == 0


async def test_a_session_subscription_cannot_be_received_without_a_session(bus_harness: BusHarness) -> None:
    receiver: QueueReceiver = receiver_of(bus_harness)
    sessions: SessionReceiver = sessions_of(bus_harness)

    with pytest.raises(ValueError, match="session"):
        await receiver.receive(ORDERED)
    with pytest.raises(ValueError, match="session"):
        await sessions.accept_next_session(ALL)


async def test_resubmitting_inside_the_topic_window_is_refused_or_delivered_never_lost(
    bus_harness: BusHarness,
) -> None:
    """Service Bus would drop a copy sent inside the window, so its adapter refuses (Conflict); the
    embedded bus bypasses duplicate detection for resubmits. Either way nothing is silently lost."""
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    sent = event()
    await bus_harness.bus.send(TOPIC, sent)
    got = await receive_one(receiver, BOOKED)
    await receiver.dead_letter(BOOKED, got.lock_token, "Broken")
    (dead,) = [d for d in await admin.peek_dead_letters(BOOKED) if d.message_id == sent.message_id]

    try:
        await admin.resubmit_dead_letter(BOOKED, dead.sequence_number)
    except Conflict:
        assert sent.message_id in [d.message_id for d in await admin.peek_dead_letters(BOOKED)]
    else:
        again = await receive_one(receiver, BOOKED)
        await receiver.complete(BOOKED, again.lock_token)
        copy = await receive_one(receiver, ALL)  # the resubmitted copy
        await receiver.complete(ALL, copy.lock_token)
    for got in await receiver.receive(ALL, max_messages=10):
        await receiver.complete(ALL, got.lock_token)
    await drain_ordered(bus_harness)
