"""The outbox relay: what the change-feed functions of `functions/events.py` do with a batch of an
aggregate container's changes. Every event document (`type: event`) becomes one message on the
topic `events` (`event_message`: message id `<aggregate id>:<version>.<n>`, session id = the
aggregate id, subject = the event type), sent in the order the change feed gave them; every other
document (the aggregate itself, a message, a message key) is ignored.

At least once: an exception leaves the batch unpublished in part or whole, the trigger's retry
policy delivers it again, and whatever was already sent is dropped by the topic's duplicate
detection (the message id is the event's own).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shared.kernel.catalog import EVENTS_TOPIC
from shared.kernel.documents import Item
from shared.kernel.errors import PayloadTooLarge
from shared.kernel.messages import MessageBus, OutgoingMessage
from shared.kernel.outbox import event_message


async def relay_events(bus: MessageBus, changes: Iterable[Item]) -> int:
    """Publish the event documents among `changes`, in order; returns how many."""
    messages = [message for item in changes if (message := event_message(item)) is not None]
    await _publish(bus, messages)
    return len(messages)


async def _publish(bus: MessageBus, messages: Sequence[OutgoingMessage]) -> None:
    """One Service Bus batch when it fits (256 KB on Standard), else halves, one after the other so
    the order stays. A single event over the limit is a bug in its producer: it raises, and the
    retry policy keeps the batch (and its partition's later events) waiting until it is fixed."""
    if not messages:
        return
    try:
        await bus.send_batch(EVENTS_TOPIC, messages)
    except PayloadTooLarge:
        if len(messages) == 1:
            raise
        half = len(messages) // 2
        await _publish(bus, messages[:half])
        await _publish(bus, messages[half:])


__all__ = ["relay_events"]
