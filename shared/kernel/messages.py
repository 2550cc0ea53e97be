"""Message bus port, shaped after Azure Service Bus queues, topics and subscriptions.

`MessageBus` is what application code uses: send now (one message, or an all-or-nothing batch),
schedule for later, cancel a scheduled message. The entity is a queue name or a topic name: as in
Service Bus, queues and topics share one namespace, so a name says which it is, and a caller never
needs to know (the Functions output binding takes either too). Duplicate detection compares
`message_id` only, inside the queue's or topic's window: a second send with the same id is accepted
and silently dropped, exactly as Service Bus does, so callers derive message ids deterministically
from what the message means.

A topic hands every message to each of its subscriptions whose filter accepts it (at send time, or
when a scheduled message comes due). A subscription is received from like a queue, addressed as the
entity `<topic>/subscriptions/<subscription>` (`subscription_entity`); every receiving and
administration call takes such an entity or a queue name.

`QueueReceiver` is what a host uses to feed queue- and subscription-triggered functions (peek-lock):
receive with a lock, then complete, abandon or dead-letter. `SessionReceiver` does the same for
session-enabled subscriptions: accept the next available session, receive its messages in order
under the session lock, renew or release it. `DeadLetterAdmin` is what ops tooling uses. The
embedded bus implements all of them; the Service Bus adapter too (in Azure the Functions host itself
receives for triggers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

# Service Bus Standard: a message (body, properties and headers) and a batch are at most 256 KB.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH_BYTES = 256 * 1024
_SUBSCRIPTIONS = "/subscriptions/"


def subscription_entity(topic: str, subscription: str) -> str:
    """The entity path of a subscription: `<topic>/subscriptions/<subscription>`."""
    return f"{topic}{_SUBSCRIPTIONS}{subscription}"


def split_subscription_entity(entity: str) -> tuple[str, str] | None:
    """(topic, subscription) for a subscription entity path, None for anything else."""
    topic, marker, subscription = entity.partition(_SUBSCRIPTIONS)
    if not marker or not topic or not subscription or "/" in subscription:
        return None
    return topic, subscription


@dataclass(frozen=True)
class QueueSpec:
    """A queue the code uses; infra must declare the same (tests compare them)."""

    name: str
    setting: str  # app setting holding the queue name, used in triggers as %SETTING%
    max_delivery_count: int = 10
    lock_duration: timedelta = timedelta(seconds=60)
    duplicate_detection_window: timedelta = timedelta(minutes=10)
    default_message_ttl: timedelta = timedelta(days=14)
    dead_lettering_on_expiration: bool = True
    description: str = ""


@dataclass(frozen=True)
class SubscriptionSpec:
    """A subscription of a topic; infra must declare the same (tests compare them).

    `subjects`: the message subjects (event types) it wants, rendered in Bicep as one Service Bus
    correlation-filter rule on the label per subject; empty = every message (the default rule).
    `requires_session`: messages are delivered per session (`session_id`), in order, one session
    to one receiver at a time; a message without a session id is dead-lettered on arrival."""

    name: str
    setting: str  # app setting holding the subscription name, used in triggers as %SETTING%
    max_delivery_count: int = 10
    lock_duration: timedelta = timedelta(seconds=60)
    requires_session: bool = False
    subjects: tuple[str, ...] = ()
    default_message_ttl: timedelta = timedelta(days=14)
    dead_lettering_on_expiration: bool = True
    description: str = ""

    def accepts(self, subject: str | None) -> bool:
        """Whether the subscription's rules let a message with this subject in."""
        return not self.subjects or subject in self.subjects


@dataclass(frozen=True)
class TopicSpec:
    """A topic and its subscriptions; infra must declare the same (tests compare them).
    Duplicate detection is always on for topics (it is what makes a relay's re-send harmless)."""

    name: str
    setting: str  # app setting holding the topic name
    duplicate_detection_window: timedelta = timedelta(minutes=10)
    default_message_ttl: timedelta = timedelta(days=14)
    subscriptions: tuple[SubscriptionSpec, ...] = ()
    description: str = ""

    def subscription(self, name: str) -> SubscriptionSpec:
        for spec in self.subscriptions:
            if spec.name == name:
                return spec
        raise KeyError(f"topic {self.name!r} has no subscription {name!r}")

    def entities(self) -> list[str]:
        """The entity path of every subscription, in catalogue order."""
        return [subscription_entity(self.name, spec.name) for spec in self.subscriptions]


@dataclass(frozen=True)
class OutgoingMessage:
    body: bytes
    message_id: str
    subject: str | None = None
    application_properties: dict[str, str | int | float | bool] = field(default_factory=dict)
    session_id: str | None = None
    correlation_id: str | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class ReceivedMessage:
    body: bytes
    message_id: str
    sequence_number: int
    delivery_count: int
    enqueued_time: datetime
    lock_token: str
    locked_until: datetime
    subject: str | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    scheduled_enqueue_time: datetime | None = None


@dataclass(frozen=True)
class DeadLetteredMessage:
    body: bytes
    message_id: str
    sequence_number: int
    delivery_count: int
    enqueued_time: datetime
    reason: str
    description: str | None
    subject: str | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class QueueDepth:
    """Counts of one entity. `queue` is the entity asked for: a queue, a topic (only scheduled
    messages wait there) or a subscription path."""

    queue: str
    active: int
    scheduled: int
    dead_letter: int


@dataclass(frozen=True)
class SessionLock:
    """A session held by one receiver until `locked_until` (renew to keep it)."""

    entity: str
    session_id: str
    lock_token: str
    locked_until: datetime


class MessageLockLost(Exception):
    """The lock expired or the message was settled already; it will be (or was) redelivered."""


class SessionLockLost(MessageLockLost):
    """The session lock expired or was released: its unsettled messages go to the next receiver."""


@runtime_checkable
class MessageBus(Protocol):
    async def send(self, entity: str, message: OutgoingMessage) -> None:
        """Enqueue now on a queue or topic. A duplicate `message_id` inside the window is dropped
        silently. Over 256 KB (body, properties and headers) raises `PayloadTooLarge`."""
        ...

    async def send_batch(self, entity: str, messages: Sequence[OutgoingMessage]) -> None:
        """Enqueue several messages as one Service Bus batch: all of them or none. The batch as a
        whole must fit in 256 KB (`PayloadTooLarge`, nothing sent). Duplicates are dropped one by
        one, as for `send`."""
        ...

    async def schedule(self, entity: str, message: OutgoingMessage, at: datetime) -> int:
        """Enqueue at `at` (aware datetime); returns the sequence number for `cancel_scheduled`.
        On a topic the message waits there and reaches the subscriptions when it comes due."""
        ...

    async def cancel_scheduled(self, entity: str, sequence_number: int) -> None:
        """Cancel a scheduled message; a no-op if it was already enqueued or cancelled."""
        ...

    async def ping(self) -> None:
        """Raise `Unavailable` if the bus cannot be reached."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class QueueReceiver(Protocol):
    """Peek-lock receiving from a queue or a subscription without sessions (`ValueError` for an
    entity that requires sessions, as Service Bus refuses a non-session receiver there)."""

    async def receive(self, queue: str, max_messages: int = 1) -> list[ReceivedMessage]:
        """Lock and return up to `max_messages` available messages. Each receive counts a delivery;
        a message past the entity's max delivery count goes to the dead-letter queue instead
        (reason `MaxDeliveryCountExceeded`). A message whose lock expired is available again."""
        ...

    async def complete(self, queue: str, lock_token: str) -> None:
        """Remove the message; `MessageLockLost` if the lock is gone."""
        ...

    async def abandon(self, queue: str, lock_token: str) -> None:
        """Release the lock so the message is delivered again."""
        ...

    async def renew_lock(self, queue: str, lock_token: str) -> datetime: ...

    async def dead_letter(
        self, queue: str, lock_token: str, reason: str, description: str | None = None
    ) -> None: ...


@runtime_checkable
class SessionReceiver(Protocol):
    """Receiving from a session-enabled subscription. A session's messages are handed to one
    receiver at a time, in the order they were sent. Messages received under a session are settled
    with the `QueueReceiver` calls (complete, abandon, dead_letter) while the session lock holds;
    their locks are the session's (renew the session, not the message)."""

    async def accept_next_session(self, entity: str) -> SessionLock | None:
        """Lock the next session that has available messages and no other holder; None if none."""
        ...

    async def receive_from_session(
        self, session: SessionLock, max_messages: int = 1
    ) -> list[ReceivedMessage]:
        """Up to `max_messages` of the session's messages, in order. `SessionLockLost` if the
        session lock is gone."""
        ...

    async def renew_session_lock(self, session: SessionLock) -> SessionLock:
        """Extend the session lock by the entity's lock duration; `SessionLockLost` if it is gone."""
        ...

    async def release_session(self, session: SessionLock) -> None:
        """Let the session go: its unsettled messages become available to the next acceptor."""
        ...


@runtime_checkable
class DeadLetterAdmin(Protocol):
    """Dead letters of a queue or a subscription entity (`topic/subscriptions/sub`)."""

    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]: ...

    async def peek_dead_letters(self, queue: str, max_messages: int = 50) -> list[DeadLetteredMessage]: ...

    async def resubmit_dead_letter(self, queue: str, sequence_number: int) -> None:
        """Send the dead-lettered message back (same body, id and properties, delivery count reset)
        and remove it from the dead-letter queue. A queue's message goes back to the queue; a
        subscription's goes to its topic, as Service Bus cannot send to one subscription: every
        subscription whose filter accepts it gets a copy, and consumers idempotent by message id
        ignore what they have already handled."""
        ...
