"""The message-bus contract: what every backend (embedded SQLite, Azure Service Bus) promises.

Tests use only the `MessageBus` port, a `QueueReceiver` and a `DeadLetterAdmin`. The receiver comes
from `receiver_of(harness)`; a backend without an in-process receiver skips the receiving tests.
Every test uses fresh uuid message ids, and compares depths as differences, so a shared queue does
not disturb it (a backend on a shared namespace still needs an empty `work` queue at the start, for
the ordering and "nothing to receive" assertions).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from shared.kernel.errors import NotFound, PayloadTooLarge
from shared.kernel.messages import (
    MAX_MESSAGE_BYTES,
    MessageBus,
    MessageLockLost,
    OutgoingMessage,
    ReceivedMessage,
)
from tests.contract.bus_support import (
    LOCK_SECONDS,
    TOLERANCE,
    WORK,
    WORK_SPEC,
    admin_of,
    close_to,
    depth,
    message,
    receive_exactly,
    receive_one,
    receiver_of,
)
from tests.contract.conftest import BusHarness


async def test_the_harness_bus_implements_the_port(bus_harness: BusHarness) -> None:
    assert isinstance(bus_harness.bus, MessageBus)
    await bus_harness.bus.ping()


async def test_a_sent_message_arrives_with_every_field_intact(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    sent = OutgoingMessage(
        body=b"\x00\x01binary\xff body",
        message_id=f"contract-{uuid.uuid4()}",
        subject="escalation.created",
        application_properties={"tenant": "t1", "attempt": 2, "ratio": 0.5, "urgent": True},
        session_id="session-7",
        correlation_id="corr-42",
        content_type="application/octet-stream",
    )
    before = bus_harness.clock.now()

    await bus_harness.bus.send(WORK, sent)
    got = await receive_one(receiver)

    assert got.body == sent.body
    assert got.message_id == sent.message_id
    assert got.subject == "escalation.created"
    assert got.application_properties == {"tenant": "t1", "attempt": 2, "ratio": 0.5, "urgent": True}
    assert got.session_id == "session-7"
    assert got.correlation_id == "corr-42"
    assert got.content_type == "application/octet-stream"
    assert got.delivery_count == 1
    assert got.lock_token
    assert got.scheduled_enqueue_time is None
    assert close_to(got.enqueued_time, before)
    assert close_to(got.locked_until, bus_harness.clock.now() + WORK_SPEC.lock_duration)
    await receiver.complete(WORK, got.lock_token)


async def test_messages_are_received_in_the_order_they_were_sent(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    sent = [message(f"{i}".encode()) for i in range(8)]
    for item in sent:
        await bus_harness.bus.send(WORK, item)

    received = await receive_exactly(receiver, len(sent))

    assert [m.message_id for m in received] == [m.message_id for m in sent]
    sequence_numbers = [m.sequence_number for m in received]
    assert sequence_numbers == sorted(sequence_numbers)
    assert len(set(sequence_numbers)) == len(sequence_numbers)


async def test_a_batch_arrives_whole_and_in_order(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    sent = [message(f"{i}".encode()) for i in range(5)]

    await bus_harness.bus.send_batch(WORK, sent)

    received = await receive_exactly(receiver, len(sent))
    assert [m.message_id for m in received] == [m.message_id for m in sent]
    for got in received:
        await receiver.complete(WORK, got.lock_token)


async def test_a_message_over_256_kb_is_refused_as_payload_too_large(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)

    with pytest.raises(PayloadTooLarge):
        await bus_harness.bus.send(WORK, message(b"x" * MAX_MESSAGE_BYTES))

    assert await receiver.receive(WORK) == []


async def test_a_batch_over_256_kb_is_refused_whole(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    # Each fits alone; together they do not. Service Bus sends none of them.
    sent = [message(b"x" * (100 * 1024)) for _ in range(3)]

    with pytest.raises(PayloadTooLarge):
        await bus_harness.bus.send_batch(WORK, sent)

    assert await receiver.receive(WORK) == []


async def test_a_duplicate_message_id_inside_the_window_is_dropped(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    first = message(b"first")
    await bus_harness.bus.send(WORK, first)
    await bus_harness.advance(1)
    await bus_harness.bus.send(WORK, OutgoingMessage(body=b"second", message_id=first.message_id))

    got = await receive_one(receiver)
    await receiver.complete(WORK, got.lock_token)

    assert got.body == b"first"
    assert await receiver.receive(WORK) == []


async def test_the_same_message_id_is_accepted_again_after_the_window(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    first = message(b"first")
    await bus_harness.bus.send(WORK, first)
    got = await receive_one(receiver)
    await receiver.complete(WORK, got.lock_token)

    await bus_harness.advance(WORK_SPEC.duplicate_detection_window.total_seconds() + 1)
    await bus_harness.bus.send(WORK, OutgoingMessage(body=b"again", message_id=first.message_id))

    again = await receive_one(receiver)
    assert again.message_id == first.message_id
    assert again.body == b"again"
    assert again.delivery_count == 1


async def test_a_scheduled_message_is_delivered_only_once_its_time_has_come(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    at = bus_harness.clock.now() + timedelta(seconds=60)
    scheduled = message(b"later")

    await bus_harness.bus.schedule(WORK, scheduled, at)
    assert await receiver.receive(WORK) == []

    await bus_harness.advance(61)
    got = await receive_one(receiver)
    assert got.message_id == scheduled.message_id
    assert got.body == b"later"
    assert close_to(got.scheduled_enqueue_time, at)
    assert got.enqueued_time >= at - TOLERANCE


async def test_schedule_returns_increasing_sequence_numbers(bus_harness: BusHarness) -> None:
    at = bus_harness.clock.now() + timedelta(minutes=5)
    first = await bus_harness.bus.schedule(WORK, message(), at)
    second = await bus_harness.bus.schedule(WORK, message(), at)

    assert second > first
    await bus_harness.bus.cancel_scheduled(WORK, first)
    await bus_harness.bus.cancel_scheduled(WORK, second)


async def test_a_cancelled_scheduled_message_is_never_delivered(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    seq = await bus_harness.bus.schedule(WORK, message(), bus_harness.clock.now() + timedelta(seconds=60))

    await bus_harness.bus.cancel_scheduled(WORK, seq)
    await bus_harness.bus.cancel_scheduled(WORK, seq)  # cancelling twice is harmless
    await bus_harness.advance(61)

    assert await receiver.receive(WORK) == []


async def test_cancelling_a_schedule_that_was_already_delivered_changes_nothing(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    scheduled = message()
    seq = await bus_harness.bus.schedule(WORK, scheduled, bus_harness.clock.now() + timedelta(seconds=30))
    await bus_harness.advance(31)
    got = await receive_one(receiver)

    await bus_harness.bus.cancel_scheduled(WORK, seq)

    assert got.message_id == scheduled.message_id
    await receiver.complete(WORK, got.lock_token)  # the lock still holds: cancel did not touch it


async def test_scheduled_messages_take_part_in_duplicate_detection(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    scheduled = message(b"scheduled")
    await bus_harness.bus.schedule(WORK, scheduled, bus_harness.clock.now() + timedelta(seconds=30))
    await bus_harness.bus.send(WORK, OutgoingMessage(body=b"now", message_id=scheduled.message_id))

    assert await receiver.receive(WORK) == []
    await bus_harness.advance(31)
    got = await receive_one(receiver)
    assert got.body == b"scheduled"


async def test_a_completed_message_is_gone_for_good(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    await bus_harness.bus.send(WORK, message())
    got = await receive_one(receiver)

    await receiver.complete(WORK, got.lock_token)
    await bus_harness.advance(LOCK_SECONDS + 1)

    assert await receiver.receive(WORK) == []


async def test_settling_a_message_twice_raises_lock_lost(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    await bus_harness.bus.send(WORK, message())
    got = await receive_one(receiver)
    await receiver.complete(WORK, got.lock_token)

    with pytest.raises(MessageLockLost):
        await receiver.complete(WORK, got.lock_token)
    with pytest.raises(MessageLockLost):
        await receiver.abandon(WORK, got.lock_token)


async def test_an_abandoned_message_is_redelivered_at_once_with_a_higher_delivery_count(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    sent = message()
    await bus_harness.bus.send(WORK, sent)
    first = await receive_one(receiver)

    await receiver.abandon(WORK, first.lock_token)
    second = await receive_one(receiver)

    assert second.message_id == sent.message_id
    assert second.sequence_number == first.sequence_number
    assert second.delivery_count == first.delivery_count + 1
    assert second.lock_token != first.lock_token


async def test_a_locked_message_is_not_handed_to_another_receiver(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    await bus_harness.bus.send(WORK, message())
    await receive_one(receiver)

    await bus_harness.advance(LOCK_SECONDS / 2)

    assert await receiver.receive(WORK) == []


async def test_a_message_whose_lock_expires_is_redelivered(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    sent = message()
    await bus_harness.bus.send(WORK, sent)
    first = await receive_one(receiver)

    await bus_harness.advance(LOCK_SECONDS + 1)
    second = await receive_one(receiver)

    assert second.message_id == sent.message_id
    assert second.delivery_count == 2
    with pytest.raises(MessageLockLost):
        await receiver.complete(WORK, first.lock_token)
    await receiver.complete(WORK, second.lock_token)


async def test_completing_after_the_lock_expired_raises_lock_lost(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    await bus_harness.bus.send(WORK, message())
    got = await receive_one(receiver)

    await bus_harness.advance(LOCK_SECONDS + 1)

    with pytest.raises(MessageLockLost):
        await receiver.complete(WORK, got.lock_token)
    with pytest.raises(MessageLockLost):
        await receiver.renew_lock(WORK, got.lock_token)


async def test_renewing_a_lock_keeps_the_message_locked_past_its_first_expiry(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    await bus_harness.bus.send(WORK, message())
    got = await receive_one(receiver)

    await bus_harness.advance(LOCK_SECONDS * 2 / 3)
    renewed_until = await receiver.renew_lock(WORK, got.lock_token)
    await bus_harness.advance(LOCK_SECONDS * 2 / 3)

    assert renewed_until > got.locked_until
    assert close_to(renewed_until, got.locked_until + WORK_SPEC.lock_duration * 2 / 3)
    assert await receiver.receive(WORK) == []
    await receiver.complete(WORK, got.lock_token)


async def test_a_message_abandoned_max_delivery_count_times_is_dead_lettered(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    sent = message(b"poison", application_properties={"kind": "poison"})
    await bus_harness.bus.send(WORK, sent)

    for attempt in range(1, WORK_SPEC.max_delivery_count + 1):
        got = await receive_one(receiver)
        assert got.delivery_count == attempt
        await receiver.abandon(WORK, got.lock_token)

    assert await receiver.receive(WORK) == []
    (dead,) = [d for d in await admin.peek_dead_letters(WORK) if d.message_id == sent.message_id]
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert dead.delivery_count == WORK_SPEC.max_delivery_count
    assert dead.body == b"poison"
    assert dead.application_properties == {"kind": "poison"}


async def test_an_explicitly_dead_lettered_message_keeps_its_reason_and_description(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    sent = message(b"bad", subject="reminder.due", correlation_id="c-1")
    await bus_harness.bus.send(WORK, sent)
    got = await receive_one(receiver)

    await receiver.dead_letter(WORK, got.lock_token, "ValidationFailed", "appointment id missing")

    assert await receiver.receive(WORK) == []
    (dead,) = [d for d in await admin.peek_dead_letters(WORK) if d.message_id == sent.message_id]
    assert dead.reason == "ValidationFailed"
    assert dead.description == "appointment id missing"
    assert dead.delivery_count == 1
    assert dead.body == b"bad"
    assert dead.subject == "reminder.due"
    assert dead.correlation_id == "c-1"
    with pytest.raises(MessageLockLost):
        await receiver.complete(WORK, got.lock_token)


async def test_peeking_dead_letters_leaves_them_in_place(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    sent = message()
    await bus_harness.bus.send(WORK, sent)
    await receiver.dead_letter(WORK, (await receive_one(receiver)).lock_token, "Broken")

    first = [d.message_id for d in await admin.peek_dead_letters(WORK)]
    second = [d.message_id for d in await admin.peek_dead_letters(WORK)]

    assert sent.message_id in first
    assert first == second


async def test_a_resubmitted_dead_letter_is_delivered_again_with_a_fresh_delivery_count(
    bus_harness: BusHarness,
) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    sent = message(b"retry me", application_properties={"attempt": 1}, subject="s")
    await bus_harness.bus.send(WORK, sent)
    got = await receive_one(receiver)
    await receiver.abandon(WORK, got.lock_token)
    got = await receive_one(receiver)
    await receiver.dead_letter(WORK, got.lock_token, "DownstreamDown")
    (dead,) = [d for d in await admin.peek_dead_letters(WORK) if d.message_id == sent.message_id]
    # Inside the duplicate-detection window Service Bus would drop the copy (the adapter refuses).
    await bus_harness.advance(WORK_SPEC.duplicate_detection_window.total_seconds() + 1)

    await admin.resubmit_dead_letter(WORK, dead.sequence_number)

    assert sent.message_id not in [d.message_id for d in await admin.peek_dead_letters(WORK)]
    again = await receive_one(receiver)
    assert again.message_id == sent.message_id
    assert again.body == b"retry me"
    assert again.application_properties == {"attempt": 1}
    assert again.subject == "s"
    assert again.delivery_count == 1


async def test_resubmitting_an_unknown_dead_letter_is_not_found(bus_harness: BusHarness) -> None:
    admin = admin_of(bus_harness)

    with pytest.raises(NotFound):
        await admin.resubmit_dead_letter(WORK, 987_654_321)


async def test_depths_count_active_scheduled_and_dead_lettered_messages(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    before = await depth(admin)

    for _ in range(3):
        await bus_harness.bus.send(WORK, message())
    await bus_harness.bus.schedule(WORK, message(), bus_harness.clock.now() + timedelta(hours=1))
    locked = await receive_one(receiver)  # a locked message still counts as active
    doomed = await receive_one(receiver)
    await receiver.dead_letter(WORK, doomed.lock_token, "Broken")

    after = await depth(admin)
    assert after.queue == WORK
    assert after.active - before.active == 2
    assert after.scheduled - before.scheduled == 1
    assert after.dead_letter - before.dead_letter == 1

    await receiver.complete(WORK, locked.lock_token)
    assert (await depth(admin)).active - before.active == 1


async def test_depths_answer_for_every_queue_asked(bus_harness: BusHarness) -> None:
    admin = admin_of(bus_harness)

    depths = await admin.depths(["work", "other"])

    assert [d.queue for d in depths] == ["work", "other"]


async def test_concurrent_receivers_never_share_a_locked_message(bus_harness: BusHarness) -> None:
    receiver = receiver_of(bus_harness)
    sent = [message(f"{i}".encode()) for i in range(50)]
    for item in sent:
        await bus_harness.bus.send(WORK, item)
    taken: list[ReceivedMessage] = []

    async def worker() -> None:
        empty_in_a_row = 0
        while len(taken) < len(sent) and empty_in_a_row < 3:
            batch = await receiver.receive(WORK, max_messages=3)
            empty_in_a_row = 0 if batch else empty_in_a_row + 1
            taken.extend(batch)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(10)))

    ids = [m.message_id for m in taken]
    assert len(ids) == len(set(ids)), "a locked message was handed to two receivers"
    assert sorted(ids) == sorted(m.message_id for m in sent)
    await asyncio.gather(*(receiver.complete(WORK, m.lock_token) for m in taken))
    assert await receiver.receive(WORK) == []
