"""The `routing` queue's handler: one message, one kind, every kind idempotent (a redelivered
message finds the work done and changes nothing).

* `conversation` (the webhook, transfers, overflow: `route:<cid>:<why>`): overflow on arrival,
  waiting order, assignment. With `returned` (conversations, when an offer comes back: declined
  or expired, shared/conversations/notices.py): release the agent, requeue, then the same.
* `agent` (presence changes, released capacity: `agent:<id>:<rev>`): find work for the agent.
* `queue`: serve the queue's backlog.
* `ended` (conversations: closed, abandoned, ended, force closed; `ended:<cid>`): drop the
  waiting entry, release the agent.
* `offer-timeout` (scheduled at an offer) and `wrapup-end` (scheduled at a close): the offer
  expires, the conversation closes (conversations' lifecycle does both).
* `exact-timeout`, `wait-timeout` (scheduled when left waiting, shared/routing/deadlines.py):
  relax skill matching, overflow by wait.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.conversations.api import Lifecycle, Status, conversations
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import NotFound
from shared.kernel.messages import MessageBus
from shared.routing.assignment import Assignment
from shared.routing.deadlines import CLOCK_SKEW, DEADLINES, WAIT_TIMEOUT, reschedule
from shared.routing.engine import overflow_while_waiting
from shared.routing.seats import waiting_of

log = logging.getLogger(__name__)


async def handle_routing_message(
    store: DocumentStore, bus: MessageBus, clock: Clock, body: dict[str, Any]
) -> None:
    """One routing request from the `routing` queue (the list above)."""
    assignment = Assignment(store, bus, clock)
    kind = body.get("kind")
    if kind == "conversation":
        returned = body.get("returned")
        if isinstance(returned, dict):
            await assignment.returned(
                str(body["conversationId"]), str(returned["agentId"]), expired=bool(returned.get("expired"))
            )
        else:
            await assignment.route_conversation(str(body["conversationId"]))
    elif kind == "agent":
        await assignment.assign_for_agent(str(body["agentId"]))
    elif kind == "queue":
        await assignment.serve_backlog(str(body["queueId"]))
    elif kind == "ended":
        queue_id, agent_id = body.get("queueId"), body.get("agentId")
        await assignment.ended(
            str(body["conversationId"]),
            str(queue_id) if queue_id else None,
            str(agent_id) if agent_id else None,
        )
    elif kind == "offer-timeout":
        await _lifecycle(assignment).expire_offer(str(body["conversationId"]), body.get("offerSeq"))
    elif kind == "wrapup-end":
        await _lifecycle(assignment).end_wrapup(str(body["conversationId"]), None)
    elif kind in DEADLINES:
        await on_deadline(assignment, body)
    else:
        raise ValueError(f"unknown routing message kind {kind!r}")


def _lifecycle(assignment: Assignment) -> Lifecycle:
    return Lifecycle(assignment.store, assignment.bus, assignment.clock, assignment.directory)


async def on_deadline(assignment: Assignment, body: dict[str, Any]) -> str:
    """A timed rule's message came: apply the rule if the conversation still waits where and since
    when the message says; returns what happened (`stale`, `rescheduled`, `overflowed`, `routed`)."""
    store, bus, clock = assignment.store, assignment.bus, assignment.clock
    kind = str(body["kind"])
    conversation_id = str(body["conversationId"])
    queue_id = str(body["queueId"])
    try:
        conversation = await conversations.read(store, conversation_id)
        entry = await assignment.entries.read(f"wait:{conversation_id}", queue_id)
    except NotFound:
        return "stale"
    if (
        conversation.status != Status.WAITING
        or conversation.queue_id != queue_id
        or entry.enqueued_at != body.get("queuedAt")
    ):
        return "stale"
    settings = await assignment.directory.queue(queue_id)
    item = waiting_of(entry)
    due = DEADLINES[kind](settings, item)
    if due is None:
        return "stale"  # the queue no longer has this rule
    now = clock.now()
    if due > now + CLOCK_SKEW:
        # The queue's setting moved the deadline later since this was scheduled.
        await reschedule(bus, kind, entry, due, now)
        return "rescheduled"
    if due > now:
        await clock.sleep((due - now).total_seconds())
    if kind == WAIT_TIMEOUT:
        if not overflow_while_waiting(settings, item, clock.now()):
            return "stale"
        await assignment.overflow(conversation, settings, "wait")
        log.info("routing: overflow by wait", extra={"conversation_id": conversation_id, "queue": queue_id})
        return "overflowed"
    result = await assignment.assign_waiting(item, settings)
    log.info(
        "routing: exact match timed out",
        extra={"conversation_id": conversation_id, "queue": queue_id, "outcome": result},
    )
    return "routed"
