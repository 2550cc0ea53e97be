"""Timed routing rules fire at their deadlines, from scheduled routing messages.

When routing leaves a conversation waiting in a queue, `schedule_deadlines` schedules one message
on the `routing` queue per timed rule the queue has:

- `exact-timeout` at queuedAt + `exactMatchTimeoutSeconds` (skill match exact-then-closest, for a
  conversation that needs skills): from then on the closest agents may take it, so routing tries
  again at once instead of waiting for an agent to change presence;
- `wait-timeout` at queuedAt + `overflow.maxWaitSeconds`: overflow by wait (transfer or end).

(Offer expiry and the end of wrap-up have their own scheduled messages, sent when they start.)

Message ids are derived from the conversation and the deadline, so a repeated schedule (the
conversation routed again, a redelivery) is dropped by duplicate detection, and a queue setting
that moves the deadline gives a new id. Nothing is ever cancelled: the message re-reads the
conversation and does nothing unless it is still waiting in the same queue since the same time
(an offer, a transfer, an end or a new queueing made it stale), so a late, stale or redelivered
message changes nothing. The sweep timer remains the backstop for a message that was lost and for
a setting changed to an earlier deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.kernel.catalog import ROUTING_QUEUE
from shared.kernel.messages import MessageBus
from shared.kernel.times import stamp
from shared.routing.documents import WaitingEntry
from shared.routing.engine import (
    Waiting,
    exact_match_deadline,
    overflow_deadline,
)
from shared.routing.model import QueueSettings
from shared.routing.seats import routing_message, waiting_of

log = logging.getLogger(__name__)

EXACT_TIMEOUT = "exact-timeout"
WAIT_TIMEOUT = "wait-timeout"
DEADLINES: dict[str, Callable[[QueueSettings, Waiting], datetime | None]] = {
    EXACT_TIMEOUT: exact_match_deadline,
    WAIT_TIMEOUT: overflow_deadline,
}
# Service Bus enqueues a scheduled message by its own clock; ours may be this much behind.
CLOCK_SKEW = timedelta(seconds=5)


async def schedule_deadlines(
    bus: MessageBus, entry: WaitingEntry, settings: QueueSettings, now: datetime
) -> None:
    """Schedule the timed rules of a conversation left waiting (`entry`: its `wait:` document)."""
    item = waiting_of(entry)
    for kind, deadline in DEADLINES.items():
        due = deadline(settings, item)
        if due is None or (kind == EXACT_TIMEOUT and due <= now):
            continue  # no such rule here, or matching is relaxed already (routing just used it)
        await reschedule(bus, kind, entry, due, now)


async def reschedule(bus: MessageBus, kind: str, entry: WaitingEntry, due: datetime, now: datetime) -> None:
    conversation_id = entry.conversation_id
    message = routing_message(
        kind,
        f"{kind}:{conversation_id}:{stamp(due)}",
        conversationId=conversation_id,
        queueId=entry.queue_id,
        queuedAt=entry.enqueued_at,
    )
    await bus.schedule(ROUTING_QUEUE, message, max(due, now))
