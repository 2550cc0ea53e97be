"""Message bus port, shaped after Azure Service Bus queues.

`MessageBus` is what application code uses: send now, schedule for later, cancel a scheduled
message. Duplicate detection compares `message_id` only, inside the queue's window: a second send
with the same id is accepted and silently dropped, exactly as Service Bus does, so callers derive
message ids deterministically from what the message means.

`QueueReceiver` is what a host uses to feed queue-triggered functions (peek-lock): receive with a
lock, then complete, abandon or dead-letter. `DeadLetterAdmin` is what ops tooling uses. The embedded
bus implements all three; the Service Bus adapter implements `MessageBus` and `DeadLetterAdmin`
(the Functions host itself receives in Azure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable


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


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    active: int
    scheduled: int
    dead_letter: int


class MessageLockLost(Exception):
    """The lock expired or the message was settled already; it will be (or was) redelivered."""


@runtime_checkable
class MessageBus(Protocol):
    async def send(self, queue: str, message: OutgoingMessage) -> None:
        """Enqueue now. A duplicate `message_id` inside the window is dropped silently."""
        ...

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        """Enqueue at `at` (aware datetime); returns the sequence number for `cancel_scheduled`."""
        ...

    async def cancel_scheduled(self, queue: str, sequence_number: int) -> None:
        """Cancel a scheduled message; a no-op if it was already enqueued or cancelled."""
        ...

    async def ping(self) -> None:
        """Raise `Unavailable` if the bus cannot be reached."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class QueueReceiver(Protocol):
    async def receive(self, queue: str, max_messages: int = 1) -> list[ReceivedMessage]:
        """Lock and return up to `max_messages` available messages. Each receive counts a delivery;
        a message past the queue's max delivery count goes to the dead-letter queue instead
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
class DeadLetterAdmin(Protocol):
    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]: ...

    async def peek_dead_letters(self, queue: str, max_messages: int = 50) -> list[DeadLetteredMessage]: ...

    async def resubmit_dead_letter(self, queue: str, sequence_number: int) -> None:
        """Send the dead-lettered message back to its queue (same body, id and properties, delivery
        count reset) and remove it from the dead-letter queue."""
        ...
