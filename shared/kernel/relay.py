"""The outbox relay: what the change-feed functions of `functions/events.py` do with a batch of an
aggregate container's changes. Every event document (`type: event`) becomes one message on the
topic `events` (`event_message`: message id `<aggregate id>:<version>.<n>`, session id = the
aggregate id, subject = the event type), sent in the order the change feed gave them (the events of
one write by their n); every other
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
    events: list[tuple[tuple[int, int], OutgoingMessage]] = []
    first_seen: dict[tuple[str, int], int] = {}
    for item in changes:
        message = event_message(item)
        if message is None:
            continue
        write = first_seen.setdefault((item["aggregateId"], item["version"]), len(first_seen))
        events.append(((write, item["n"]), message))
    # Feed order, except that the events of one write (one version, written in one batch) go by n:
    # the documents of a transactional batch share one commit, and nothing we read promises their
    # order within it.
    events.sort(key=lambda pair: pair[0])
    await _publish(bus, [message for _, message in events])
    return len(events)


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
