"""What the Service Bus adapter does with topics, subscriptions and sessions, without a namespace:
the SDK client, senders, receivers and administration client are recording fakes (the queue fakes
of test_servicebus_adapter.py, extended)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageSizeExceededError, OperationTimeoutError, SessionLockLostError

from shared.adapters.servicebus_bus import ServiceBusMessageBus
from shared.kernel.errors import PayloadTooLarge
from shared.kernel.messages import (
    MessageLockLost,
    OutgoingMessage,
    SessionLockLost,
    SessionReceiver,
    SubscriptionSpec,
    TopicSpec,
    subscription_entity,
)
from tests.unit.test_servicebus_adapter import (
    NOW,
    QUEUES,
    FakeAdmin,
    FakeClient,
    FakeReceived,
    FakeReceiver,
    FakeSender,
)

TOPICS = {
    "events": TopicSpec(
        "events",
        "EVENTS_TOPIC",
        duplicate_detection_window=timedelta(hours=1),
        subscriptions=(
            SubscriptionSpec("notify", "NOTIFY_SUB"),
            SubscriptionSpec("ordered", "ORDERED_SUB", requires_session=True),
        ),
    )
}
NOTIFY = subscription_entity("events", "notify")
ORDERED = subscription_entity("events", "ordered")


class FakeSession:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.locked_until_utc = NOW + timedelta(seconds=60)
        self.renew_raises: Exception | None = None

    async def renew_lock(self) -> datetime:
        if self.renew_raises:
            raise self.renew_raises
        self.locked_until_utc += timedelta(seconds=60)
        return self.locked_until_utc


class FakeSessionReceiver(FakeReceiver):
    def __init__(self, entity: str, messages: list[FakeReceived], session_id: str | None) -> None:
        super().__init__(entity, None, messages)
        self.session = FakeSession(session_id or "")
        self.session_available = session_id is not None

    async def __aenter__(self) -> FakeSessionReceiver:
        if not self.session_available:
            raise OperationTimeoutError(message="no session")
        return self


@dataclass
class FakeSubscriptionProperties:
    active_message_count: int
    dead_letter_message_count: int


@dataclass
class FakeTopicProperties:
    scheduled_message_count: int


class TopicAdmin(FakeAdmin):
    async def get_topic_runtime_properties(self, topic: str) -> FakeTopicProperties:
        self.asked.append(topic)
        return FakeTopicProperties(4)

    async def get_subscription_runtime_properties(self, topic: str, sub: str) -> FakeSubscriptionProperties:
        self.asked.append(f"{topic}|{sub}")
        return FakeSubscriptionProperties(5, 6)


class TopicClient(FakeClient):
    def __init__(self) -> None:
        super().__init__()
        self.subscription_messages: list[FakeReceived] = []
        self.next_session: str | None = None
        self.receiver_calls: list[dict[str, Any]] = []

    def get_topic_sender(self, topic_name: str) -> FakeSender:
        sender = self.senders[f"topic:{topic_name}"] = FakeSender(topic_name)
        return sender

    def get_subscription_receiver(self, **kw: Any) -> FakeReceiver:
        self.receiver_calls.append(kw)
        entity = f"{kw['topic_name']}|{kw['subscription_name']}"
        if kw.get("session_id") is NEXT_AVAILABLE_SESSION:
            receiver: FakeReceiver = FakeSessionReceiver(
                entity, self.subscription_messages, self.next_session
            )
        elif kw.get("sub_queue") == ServiceBusSubQueue.DEAD_LETTER:
            receiver = FakeReceiver(entity, kw["sub_queue"], self.dead_letters)
        else:
            receiver = FakeReceiver(entity, None, self.subscription_messages)
        self.receivers.append(receiver)
        return receiver


class Harness:
    def __init__(self) -> None:
        self.client = TopicClient()
        self.admin = TopicAdmin()
        self.bus = ServiceBusMessageBus(
            "psc.servicebus.windows.net",
            QUEUES,
            lambda: object(),
            topics=TOPICS,
            entity_names={"events": "events-prod", NOTIFY: "notify-prod"},
            client_factory=lambda: self.client,
            admin_factory=lambda: self.admin,
            clock=lambda: NOW,
        )


def event(**fields: Any) -> OutgoingMessage:
    return OutgoingMessage(body=b"{}", message_id="agg-1:3.0", subject="booked", session_id="agg-1", **fields)


def test_the_adapter_receives_sessions() -> None:
    assert isinstance(Harness().bus, SessionReceiver)


async def test_a_message_to_a_topic_goes_through_the_deployed_topics_sender_with_its_session() -> None:
    harness = Harness()

    await harness.bus.send("events", event())

    (sent,) = harness.client.senders["topic:events-prod"].sent
    assert (sent.message_id, sent.session_id, sent.subject) == ("agg-1:3.0", "agg-1", "booked")


async def test_a_batch_is_sent_as_one_list_and_an_oversized_one_is_payload_too_large() -> None:
    harness = Harness()

    await harness.bus.send_batch("events", [event(), event()])
    sender = harness.client.senders["topic:events-prod"]
    sender.raises = MessageSizeExceededError(message="too big")
    with pytest.raises(PayloadTooLarge):
        await harness.bus.send_batch("events", [event()])

    (batch,) = sender.sent
    assert isinstance(batch, list)
    assert all(isinstance(m, ServiceBusMessage) for m in batch)


async def test_a_subscription_cannot_be_sent_to() -> None:
    with pytest.raises(ValueError, match="send to its topic"):
        await Harness().bus.send(NOTIFY, event())


async def test_a_subscription_is_received_from_by_its_deployed_names() -> None:
    harness = Harness()
    harness.client.subscription_messages.append(FakeReceived(4, "agg-1:3.0", session_id="agg-1"))

    (got,) = await harness.bus.receive(NOTIFY)
    await harness.bus.complete(NOTIFY, got.lock_token)

    assert harness.client.receiver_calls[0] == {
        "topic_name": "events-prod",
        "subscription_name": "notify-prod",
    }
    assert got.session_id == "agg-1"
    assert harness.client.receivers[0].completed == [4]


async def test_a_session_subscription_refuses_a_receiver_without_a_session() -> None:
    with pytest.raises(ValueError, match="requires sessions"):
        await Harness().bus.receive(ORDERED)
    with pytest.raises(ValueError, match="does not require sessions"):
        await Harness().bus.accept_next_session(NOTIFY)


async def test_accepting_a_session_links_to_the_next_available_one() -> None:
    harness = Harness()
    harness.client.next_session = "agg-1"
    harness.client.subscription_messages.append(FakeReceived(4, "agg-1:3.0", session_id="agg-1"))

    session = await harness.bus.accept_next_session(ORDERED)
    assert session is not None
    (got,) = await harness.bus.receive_from_session(session)
    await harness.bus.complete(ORDERED, got.lock_token)
    renewed = await harness.bus.renew_session_lock(session)

    call = harness.client.receiver_calls[0]
    assert call["session_id"] is NEXT_AVAILABLE_SESSION
    assert call["subscription_name"] == "ordered"
    assert session.session_id == "agg-1"
    assert renewed.locked_until > session.locked_until
    receiver = harness.client.receivers[0]
    assert receiver.completed == [4]
    with pytest.raises(TypeError, match="session"):
        await harness.bus.renew_lock(ORDERED, got.lock_token)


async def test_no_free_session_within_the_wait_is_none() -> None:
    harness = Harness()

    assert await harness.bus.accept_next_session(ORDERED) is None
    assert harness.client.receivers[0].closed


async def test_releasing_a_session_closes_its_receiver_and_forgets_its_locks() -> None:
    harness = Harness()
    harness.client.next_session = "agg-1"
    harness.client.subscription_messages.append(FakeReceived(4, "agg-1:3.0", session_id="agg-1"))
    session = await harness.bus.accept_next_session(ORDERED)
    assert session is not None
    (got,) = await harness.bus.receive_from_session(session)

    await harness.bus.release_session(session)

    assert harness.client.receivers[0].closed
    with pytest.raises(MessageLockLost):
        await harness.bus.complete(ORDERED, got.lock_token)
    with pytest.raises(SessionLockLost):
        await harness.bus.receive_from_session(session)


async def test_a_lost_session_lock_is_reported_as_session_lock_lost() -> None:
    harness = Harness()
    harness.client.next_session = "agg-1"
    session = await harness.bus.accept_next_session(ORDERED)
    assert session is not None
    receiver = harness.client.receivers[0]
    assert isinstance(receiver, FakeSessionReceiver)
    receiver.session.renew_raises = SessionLockLostError(message="gone")

    with pytest.raises(SessionLockLost):
        await harness.bus.renew_session_lock(session)
    assert receiver.closed


async def test_depths_cover_queues_topics_and_subscriptions() -> None:
    harness = Harness()

    depths = await harness.bus.depths(["routing", "events", NOTIFY])

    assert harness.admin.asked == ["routing", "events-prod", "events-prod|notify-prod"]
    assert [(d.queue, d.active, d.scheduled, d.dead_letter) for d in depths] == [
        ("routing", 3, 2, 1),
        ("events", 0, 4, 0),
        (NOTIFY, 5, 0, 6),
    ]


async def test_a_subscription_dead_letter_is_peeked_there_and_resubmitted_through_the_topic() -> None:
    harness = Harness()
    harness.client.dead_letters.extend(
        FakeReceived(n, f"agg-1:{n}.0", session_id="agg-1", enqueued_time_utc=NOW - timedelta(hours=2))
        for n in (3, 5)
    )

    peeked = await harness.bus.peek_dead_letters(ORDERED)
    await harness.bus.resubmit_dead_letter(ORDERED, 5)

    assert [d.session_id for d in peeked] == ["agg-1", "agg-1"]
    dead_letter_calls = [c for c in harness.client.receiver_calls if c.get("sub_queue")]
    assert all(c["subscription_name"] == "ordered" and "session_id" not in c for c in dead_letter_calls)
    (copy,) = harness.client.senders["topic:events-prod"].sent
    assert (copy.message_id, copy.session_id) == ("agg-1:5.0", "agg-1")


async def test_a_subscription_dead_letter_inside_the_topics_window_is_refused() -> None:
    from shared.kernel.errors import Conflict

    harness = Harness()
    harness.client.dead_letters.append(
        FakeReceived(3, "agg-1:3.0", enqueued_time_utc=NOW - timedelta(minutes=30))
    )

    with pytest.raises(Conflict, match="duplicate-detection window"):
        await harness.bus.resubmit_dead_letter(NOTIFY, 3)
