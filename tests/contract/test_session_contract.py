"""The session contract: a session-enabled subscription hands each session to one receiver at a
time, under a session lock that expires unless renewed, with the session's messages in the order
they were sent. Runs on every bus backend (embedded SQLite; Service Bus when configured).

Every test starts by draining the `ordered` subscription, so a shared namespace's leftovers do not
decide which session `accept_next_session` picks.
"""

from __future__ import annotations

import uuid

import pytest

from shared.kernel.messages import MessageLockLost, OutgoingMessage, SessionLockLost, subscription_entity
from tests.contract.bus_support import admin_of, receiver_of, sessions_of
from tests.contract.conftest import CONTRACT_TOPICS, BusHarness
from tests.contract.test_topic_contract import ALL, BOOKED, TOPIC, drain_ordered

ORDERED = subscription_entity(TOPIC, "ordered")
SPEC = CONTRACT_TOPICS[TOPIC].subscription("ordered")
LOCK_SECONDS = SPEC.lock_duration.total_seconds()


def in_session(session_id: str, n: int, subject: str = "appointment.cancelled") -> OutgoingMessage:
    return OutgoingMessage(
        body=f'{{"n": {n}}}'.encode(),
        message_id=f"{session_id}:{n}",
        subject=subject,
        session_id=session_id,
    )


def new_session_id() -> str:
    return f"agg-{uuid.uuid4().hex[:12]}"


async def send_session(harness: BusHarness, session_id: str, count: int) -> list[str]:
    messages = [in_session(session_id, n) for n in range(count)]
    for item in messages:
        await harness.bus.send(TOPIC, item)
    # The `all` subscription takes a copy too; it is not what these tests are about.
    receiver = receiver_of(harness)
    while batch := await receiver.receive(ALL, max_messages=50):
        for got in batch:
            await receiver.complete(ALL, got.lock_token)
    return [item.message_id for item in messages]


@pytest.fixture(autouse=True)
async def clean_subscription(bus_harness: BusHarness) -> None:
    await drain_ordered(bus_harness)


async def test_a_session_delivers_its_messages_in_the_order_they_were_sent(bus_harness: BusHarness) -> None:
    sessions = sessions_of(bus_harness)
    receiver = receiver_of(bus_harness)
    sid = new_session_id()
    sent = await send_session(bus_harness, sid, 5)

    session = await sessions.accept_next_session(ORDERED)
    assert session is not None
    assert session.session_id == sid
    assert session.locked_until > bus_harness.clock.now()
    seen = []
    while batch := await sessions.receive_from_session(session):
        (got,) = batch
        assert got.session_id == sid
        seen.append(got.message_id)
        await receiver.complete(ORDERED, got.lock_token)
    await sessions.release_session(session)

    assert seen == sent


async def test_a_held_session_is_not_handed_to_a_second_receiver(bus_harness: BusHarness) -> None:
    sessions = sessions_of(bus_harness)
    first_sid, second_sid = new_session_id(), new_session_id()
    await send_session(bus_harness, first_sid, 2)
    await send_session(bus_harness, second_sid, 2)

    first = await sessions.accept_next_session(ORDERED)
    second = await sessions.accept_next_session(ORDERED)
    third = await sessions.accept_next_session(ORDERED)

    assert first is not None
    assert second is not None
    assert {first.session_id, second.session_id} == {first_sid, second_sid}
    assert third is None
    await sessions.release_session(first)
    await sessions.release_session(second)


async def test_an_abandoned_message_comes_back_before_the_rest_of_its_session(
    bus_harness: BusHarness,
) -> None:
    sessions = sessions_of(bus_harness)
    receiver = receiver_of(bus_harness)
    sid = new_session_id()
    sent = await send_session(bus_harness, sid, 3)
    session = await sessions.accept_next_session(ORDERED)
    assert session is not None

    (first,) = await sessions.receive_from_session(session)
    await receiver.abandon(ORDERED, first.lock_token)
    (again,) = await sessions.receive_from_session(session)

    assert again.message_id == sent[0]
    assert again.delivery_count == first.delivery_count + 1
    await receiver.complete(ORDERED, again.lock_token)
    (following,) = await sessions.receive_from_session(session)
    assert following.message_id == sent[1]
    await receiver.complete(ORDERED, following.lock_token)
    await sessions.release_session(session)


async def test_a_released_session_goes_to_the_next_acceptor_with_its_unsettled_message(
    bus_harness: BusHarness,
) -> None:
    sessions = sessions_of(bus_harness)
    receiver = receiver_of(bus_harness)
    sid = new_session_id()
    sent = await send_session(bus_harness, sid, 2)
    session = await sessions.accept_next_session(ORDERED)
    assert session is not None
    (got,) = await sessions.receive_from_session(session)

    await sessions.release_session(session)

    with pytest.raises(MessageLockLost):
        await receiver.complete(ORDERED, got.lock_token)
    again = await sessions.accept_next_session(ORDERED)
    assert again is not None
    assert again.session_id == sid
    (redelivered,) = await sessions.receive_from_session(again)
    assert redelivered.message_id == sent[0]
    assert redelivered.delivery_count >= 2
    await receiver.complete(ORDERED, redelivered.lock_token)
    await sessions.release_session(again)


async def test_an_expired_session_lock_frees_the_session_for_another_receiver(
    bus_harness: BusHarness,
) -> None:
    sessions = sessions_of(bus_harness)
    receiver = receiver_of(bus_harness)
    sid = new_session_id()
    await send_session(bus_harness, sid, 1)
    session = await sessions.accept_next_session(ORDERED)
    assert session is not None
    (got,) = await sessions.receive_from_session(session)

    await bus_harness.advance(LOCK_SECONDS + 2)

    with pytest.raises(SessionLockLost):
        await sessions.receive_from_session(session)
    with pytest.raises(MessageLockLost):
        await receiver.complete(ORDERED, got.lock_token)
    taken_over = await sessions.accept_next_session(ORDERED)
    assert taken_over is not None
    assert taken_over.session_id == sid
    (again,) = await sessions.receive_from_session(taken_over)
    assert again.message_id == got.message_id
    await receiver.complete(ORDERED, again.lock_token)
    await sessions.release_session(taken_over)


async def test_renewing_the_session_lock_keeps_the_session_past_its_first_expiry(
    bus_harness: BusHarness,
) -> None:
    sessions = sessions_of(bus_harness)
    receiver = receiver_of(bus_harness)
    sid = new_session_id()
    await send_session(bus_harness, sid, 1)
    session = await sessions.accept_next_session(ORDERED)
    assert session is not None
    (got,) = await sessions.receive_from_session(session)

    await bus_harness.advance(LOCK_SECONDS * 2 / 3)
    renewed = await sessions.renew_session_lock(session)
    await bus_harness.advance(LOCK_SECONDS * 2 / 3)

    assert renewed.locked_until > session.locked_until
    assert await sessions.accept_next_session(ORDERED) is None
    await receiver.complete(ORDERED, got.lock_token)
    await sessions.release_session(renewed)


async def test_a_session_message_that_keeps_failing_is_dead_lettered_and_the_session_moves_on(
    bus_harness: BusHarness,
) -> None:
    sessions = sessions_of(bus_harness)
    receiver = receiver_of(bus_harness)
    admin = admin_of(bus_harness)
    sid = new_session_id()
    sent = await send_session(bus_harness, sid, 2)
    session = await sessions.accept_next_session(ORDERED)
    assert session is not None

    for attempt in range(1, SPEC.max_delivery_count + 1):
        (got,) = await sessions.receive_from_session(session)
        assert (got.message_id, got.delivery_count) == (sent[0], attempt)
        await receiver.abandon(ORDERED, got.lock_token)
    (following,) = await sessions.receive_from_session(session)

    assert following.message_id == sent[1]
    await receiver.complete(ORDERED, following.lock_token)
    await sessions.release_session(session)
    (dead,) = [d for d in await admin.peek_dead_letters(ORDERED) if d.message_id == sent[0]]
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert dead.session_id == sid


async def test_a_message_without_a_session_id_is_dead_lettered_by_a_session_subscription(
    bus_harness: BusHarness,
) -> None:
    admin = admin_of(bus_harness)
    receiver = receiver_of(bus_harness)
    sent = OutgoingMessage(body=b"{}", message_id=f"contract-{uuid.uuid4()}", subject="appointment.booked")

    await bus_harness.bus.send(TOPIC, sent)

    (dead,) = [d for d in await admin.peek_dead_letters(ORDERED) if d.message_id == sent.message_id]
    assert "session" in dead.reason.lower()
    assert await sessions_of(bus_harness).accept_next_session(ORDERED) is None
    for entity in (ALL, BOOKED):  # subscriptions without sessions take it as usual
        (got,) = await receiver.receive(entity)
        assert got.message_id == sent.message_id
        await receiver.complete(entity, got.lock_token)
