"""What consoles read of routing's state: the supervisor's live board (`GET
/api/supervisor/conversations`: live conversations queue by queue, the queues' depth and longest
wait, and the agents with presence and load) and an agent's own work (`my_conversations`).

A waiting row says why it waits when the answer is not just "nobody is free right now":

* `"outOfHours": true`: its queue is closed by its operating hours at this moment;
* otherwise `"unassignable": {"reason": …}`: no member of its queue may ever be offered it as
  things stand (`shared.routing.engine.unassignable_reason`: every member excluded by declines,
  nobody with its language, the capacity for its units or, under exact matching, its skills, or
  nobody serving the queue at all). Busy, away and offline agents still count as able to take it
  later: that conversation is merely waiting.

Both are worked out when the board is read, not recorded by routing. Whether a conversation is
unassignable changes with things routing never sees (an administrator changes an agent's skills,
languages, capacity or queues, or a queue's skill matching), so a recorded flag would go stale
until each of those writes found and re-checked every waiting conversation it touched; and being
closed changes with the clock alone. Read here, the answer is always current and the routing path
pays nothing (`python -m bench.store_ops` unchanged). The board pays one in-partition query of a
queue's seats (a page of MEMBER_PAGE) for each queue with a waiting row on the page; further pages
only while a row has found no member who could take it, which is the unassignable case itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared.auth.principal import Principal
from shared.conversations.api import (
    DEFAULT_QUEUE,
    HOLDS_CAPACITY,
    LIVE,
    ConversationDocument,
    Status,
    conversations,
)
from shared.kernel import lists
from shared.kernel.catalog import ROUTING
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import NotFound, ValidationFailed
from shared.kernel.stored import Stored
from shared.routing.directory import AGENT_SEGMENTS, RoutingDirectory, by_priority
from shared.routing.documents import AgentDocument, SeatDocument, WaitingEntry
from shared.routing.engine import Seat, Waiting, is_open, unassignable_reason
from shared.routing.model import QueueSettings
from shared.routing.seats import WAITING_RANGE, parse_time, seat_from_doc, waiting_entry, waiting_of

_AFTER_EVERY_PRIORITY = 10_001  # queue priorities are 0-10,000: the default queue walks last
MEMBER_PAGE = 200
# Board rows leave out the PHI (transcript, summary, messages): a wall screen is not a chart.
BOARD_FIELDS = (
    "id",
    "status",
    "queueId",
    "agentId",
    "priority",
    "patientId",
    "urgency",
    "specialty",
    "language",
    "channel",
    "transfers",
    "createdAt",
    "escalatedAt",
    "queuedAt",
    "offeredAt",
    "acceptedAt",
    "firstAgentResponseAt",
    "wrapupAt",
    "closedAt",
    "abandonedAt",
    "offerExpiresAt",
)


class _Members:
    """A queue's member agents as seats (one per member, whatever their presence), read a page
    at a time and only as far as a question needs. Rows of one queue load concurrently and share
    the pages read."""

    def __init__(self, seats: Stored[SeatDocument], queue_id: str) -> None:
        self._seat_docs = seats
        self._queue_id = queue_id
        self._seats: list[Seat] = []
        self._continuation: str | None = None
        self._read_all = False
        self._lock = asyncio.Lock()

    async def why_unassignable(self, item: Waiting, settings: QueueSettings) -> str | None:
        async with self._lock:
            while True:
                reason = unassignable_reason(item, settings, self._seats)
                if reason is None or self._read_all:
                    return reason
                page = await self._seat_docs.query(
                    Query((where("type", "=", "seat"),)),
                    partition_key=self._queue_id,
                    max_items=MEMBER_PAGE,
                    continuation=self._continuation,
                )
                self._seats += [seat_from_doc(doc) for doc in page.items]
                self._continuation = page.continuation
                self._read_all = page.continuation is None


class SupervisorBoard:
    def __init__(self, store: DocumentStore, clock: Clock, directory: RoutingDirectory) -> None:
        self._store = store
        self._clock = clock
        self._directory = directory
        self._members: dict[str, _Members] = {}

    async def page(
        self, statuses: list[str] | None, max_items: int, continuation: str | None
    ) -> dict[str, Any]:
        """Live conversations queue by queue (priority order, the built-in `default` last), each
        queue's oldest first; the queues' depth and longest wait; agents by id. `items` and
        `agents` page together: each page carries up to `max_items` of each (a section that has
        ended comes back empty) until `continuationToken` is absent. Every read is one partition:
        the queues' board lists and the agents list (shared/kernel/lists.py), members re-read."""
        wanted = frozenset(statuses or [str(s) for s in LIVE])
        scope = "board:" + ",".join(sorted(wanted))
        state = lists.unseal(scope, continuation)
        if state is not None and set(state) != {"cv", "ag"}:
            raise ValidationFailed(
                [{"field": "query.continuationToken", "message": "is not a token this list handed out"}]
            )
        index = await self._directory.queue_index()
        rows: list[dict[str, Any]] = []
        following: dict[str, Any] = {"cv": None, "ag": None}
        if state is None or state["cv"] is not None:

            async def row(entry: lists.ListEntry, _: lists.Segment) -> dict[str, Any] | None:
                doc = await conversations.read_or_none(self._store, entry.ref)
                # Skip what the entry no longer says: closed, moved to another queue, filtered out.
                if doc is None or (doc.queue_id or DEFAULT_QUEUE) != entry.queue_id:
                    return None
                if doc.status not in wanted:
                    return None
                body = doc.body()
                found = {k: body.get(k) for k in BOARD_FIELDS}
                if doc.status == Status.WAITING:
                    found.update(await self._standing(doc, entry.queue_id or DEFAULT_QUEUE))
                return found

            cursor = lists.cursor_of(state["cv"]) if state else None
            rows, following["cv"] = await lists.walk(
                self._store, _queue_segments(index), cursor, max_items, row
            )
        agents: list[dict[str, Any]] = []
        if state is None or state["ag"] is not None:
            cursor = lists.cursor_of(state["ag"]) if state else None
            docs, following["ag"] = await lists.walk(
                self._store, AGENT_SEGMENTS, cursor, max_items, self._directory.load_agent
            )
            agents = [_board_agent(a) for a in docs]
        answer: dict[str, Any] = {
            "items": rows,
            "queues": await self._queue_summaries(index),
            "agents": agents,
        }
        token = lists.seal(scope, following if any(following.values()) else None, limit=2 * lists.TOKEN_CHARS)
        if token:
            answer["continuationToken"] = token
        return answer

    async def _standing(self, doc: ConversationDocument, queue_id: str) -> dict[str, Any]:
        """`outOfHours`, or `unassignable` with its reason, or nothing (see the module docstring)."""
        settings = await self._directory.queue(queue_id)
        if not is_open(settings.operating_hours, self._clock.now()):
            return {"outOfHours": True}
        seats = Stored(self._store, ROUTING, SeatDocument)
        members = self._members.setdefault(queue_id, _Members(seats, queue_id))
        entry = waiting_entry(doc, doc.queued_at or doc.created_at, settings.capacity_units)
        reason = await members.why_unassignable(waiting_of(entry), settings)
        return {"unassignable": {"reason": reason}} if reason else {}

    async def _queue_summaries(self, index: dict[str, int]) -> list[dict[str, Any]]:
        now = self._clock.now()
        entries = Stored(self._store, ROUTING, WaitingEntry)
        queues = []
        for queue_id in [*by_priority(index), DEFAULT_QUEUE]:
            waiting = await entries.query(
                Query((where("type", "=", "waiting"),), order_by=(("enqueuedAt", False),)),
                partition_key=queue_id,
                max_items=1000,
            )
            if queue_id == DEFAULT_QUEUE and not waiting.items:
                continue
            oldest = parse_time(waiting.items[0].enqueued_at) if waiting.items else None
            queues.append(
                {
                    "queueId": queue_id,
                    "depth": len(waiting.items),
                    "depthIsLowerBound": waiting.continuation is not None,
                    "longestWaitSeconds": round((now - oldest).total_seconds(), 3) if oldest else 0,
                }
            )
        return queues


def _queue_segments(index: dict[str, int]) -> list[lists.Segment]:
    """The board's walk: queues by priority number then id (what `by_priority` serves), the
    built-in default last; the position keeps that order as a string inside tokens."""
    segments = [
        lists.Segment(f"{index[q]:05d}|{q}", conversations.live_conversations_list(q))
        for q in by_priority(index)
    ]
    if DEFAULT_QUEUE not in index:
        segments.append(
            lists.Segment(
                f"{_AFTER_EVERY_PRIORITY:05d}|{DEFAULT_QUEUE}",
                conversations.live_conversations_list(DEFAULT_QUEUE),
            )
        )
    return segments


def _board_agent(agent: AgentDocument) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.profile.name,
        "presence": str(agent.presence),
        "chosenPresence": str(agent.chosen_presence),
        "used": agent.used,
        "capacity": agent.profile.capacity,
        "queues": list(agent.profile.queues),
    }


async def my_conversations(
    store: DocumentStore, directory: RoutingDirectory, principal: Principal
) -> list[ConversationDocument]:
    """An agent's offered, active and wrap-up conversations, oldest offer first: point reads of
    the conversations the agent's document holds capacity for."""
    try:
        agent = await directory.agent_doc(principal.subject)
    except NotFound:
        raise NotFound("you are not registered as an agent") from None
    out = []
    for conversation_id in agent.conversations:
        doc = await conversations.read_or_none(store, conversation_id)
        if doc is not None and doc.agent_id == principal.subject and doc.status in HOLDS_CAPACITY:
            out.append(doc)
    return sorted(out, key=lambda d: d.offered_at or "")


QUEUE_ORDER_PAGE = 200


async def queue_order(store: DocumentStore, queue_id: str) -> list[str]:
    """The conversations waiting in a queue in serving order (first = next served), at most
    QUEUE_ORDER_PAGE: one indexed range of the queue's partition. A patient's place in the queue
    is its index + 1."""
    page = await Stored(store, ROUTING, WaitingEntry).query_stored(
        Query(WAITING_RANGE, order_by=(("sortKey", False),)),
        partition_key=queue_id,
        max_items=QUEUE_ORDER_PAGE,
    )
    return [str(item["conversationId"]) for item in page.items]
