"""The sweep timer's backstop (every 5 minutes by default). Each timed rule fires from its own
scheduled message (shared/routing/deadlines.py, offer-timeout, wrapup-end); this catches what a
lost message or a setting changed to an earlier deadline left behind: overflow by wait, stale
offers and wrap-ups, assignment retried in every queue (an exact match that timed out), waiting
conversations whose routing request never arrived, and capacity leaked by a worker that died
between reserving an agent and offering a conversation."""

from __future__ import annotations

from datetime import timedelta

from shared.conversations.api import HOLDS_CAPACITY, Lifecycle, Status, conversations
from shared.kernel.catalog import ROUTING_QUEUE
from shared.kernel.documents import Query, where
from shared.kernel.times import stamp
from shared.routing.assignment import Assignment
from shared.routing.directory import DEFAULT_QUEUE, by_priority
from shared.routing.engine import overflow_while_waiting
from shared.routing.seats import parse_time, route_request, waiting_of

# A waiting conversation not routed this long after it was queued lost its routing request.
LOST_AFTER = timedelta(minutes=1)


async def sweep(assignment: Assignment) -> dict[str, int]:
    store, clock = assignment.store, assignment.clock
    now = clock.now()
    lifecycle = Lifecycle(store, assignment.bus, clock, assignment.directory)
    counts = {"overflowed": 0, "expiredOffers": 0, "closedWrapups": 0, "assigned": 0}
    index = await assignment.directory.queue_index()
    for queue_id in [*by_priority(index), DEFAULT_QUEUE]:
        settings = await assignment.directory.queue(queue_id)
        limit = settings.overflow.max_wait_seconds
        if limit is not None:
            cutoff = stamp(now - timedelta(seconds=limit))
            page = await assignment.entries.query(
                Query((where("type", "=", "waiting"), where("enqueuedAt", "<=", cutoff))),
                partition_key=queue_id,
                max_items=200,
            )
            for entry in page.items:
                if overflow_while_waiting(settings, waiting_of(entry), now):
                    conversation = await conversations.read_or_none(store, entry.conversation_id)
                    if conversation is None:
                        await assignment.drop_entry(entry.conversation_id, queue_id)
                        continue
                    await assignment.overflow(conversation, settings, "wait")
                    counts["overflowed"] += 1
        counts["assigned"] += len(await assignment.serve_backlog(queue_id))
    # Offers and wrap-ups past their time (their scheduled message normally does this).
    for status, field, action in (
        (Status.OFFERED, "offerExpiresAt", lifecycle.expire_offer),
        (Status.WRAPUP, "wrapupEndsAt", lifecycle.end_wrapup),
    ):
        found = await conversations.scan(
            store, Query((where("status", "=", str(status)), where(field, "<=", stamp(now)))), max_items=200
        )
        for doc in found.items:
            if await action(doc.id, doc.offer_seq):
                counts["expiredOffers" if status == Status.OFFERED else "closedWrapups"] += 1
    counts["rerouted"] = await reroute_lost(assignment)
    counts["repaired"] = await repair_leaks(assignment)
    return counts


async def reroute_lost(assignment: Assignment) -> int:
    """Ask routing again for waiting conversations it never saw (the webhook stored one and could
    not send its routing request, and the bot did not retry). Same message id as the webhook's:
    inside the duplicate-detection window a request still in the queue is not doubled."""
    cutoff = stamp(assignment.clock.now() - LOST_AFTER)
    found = await conversations.scan(
        assignment.store,
        Query(
            (
                where("type", "=", "conversation"),
                where("status", "=", str(Status.WAITING)),
                where("routedAt", "=", None),
                where("queuedAt", "<=", cutoff),
            )
        ),
        max_items=200,
    )
    for doc in found.items:
        await assignment.bus.send(ROUTING_QUEUE, route_request(doc.id))
    return len(found.items)


async def repair_leaks(assignment: Assignment) -> int:
    """Release capacity an agent holds for a conversation it does not have (a worker died
    between reserving the agent and offering the conversation)."""
    repaired = 0
    page = await assignment.agents.query_cross_partition(Query((where("used", ">", 0),)), max_items=1000)
    stale_before = assignment.clock.now() - timedelta(seconds=60)
    for agent in page.items:
        for conversation_id in list(agent.conversations):
            doc = await conversations.read_or_none(assignment.store, conversation_id)
            held = doc is not None and doc.status in HOLDS_CAPACITY and doc.agent_id == agent.id
            updated = parse_time(agent.updated_at)
            if not held and (updated is None or updated < stale_before):
                await assignment.release(agent.id, conversation_id)
                repaired += 1
    return repaired
