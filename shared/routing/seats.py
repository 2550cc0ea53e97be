"""Seats and waiting entries: routing's index of a queue, kept in the queue's `routing` partition,
and the conversions between stored documents and the engine's values.

A seat (`seat:<agentId>`) is a copy of a member agent's presence and load, keyed by `sortKey` in
the queue's assignment order (shared/routing/engine.py `seat_sort_key`); a waiting entry
(`wait:<conversationId>`) holds a queued conversation in serving order. Both are hints for
ordering: the agent document's ETag keeps capacity and the conversation's ETag keeps the offer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from shared.conversations.api import DEFAULT_QUEUE, ConversationDocument
from shared.kernel.catalog import AGENTS, ROUTING
from shared.kernel.documents import DocumentStore, Item, Query, where
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.messages import OutgoingMessage
from shared.kernel.messaging import json_message
from shared.kernel.retry import retry
from shared.kernel.stored import Stored
from shared.kernel.times import parse_stamp, stamp
from shared.routing.documents import AgentDocument, SeatDocument, WaitingEntry
from shared.routing.engine import Seat, Waiting, presence_for_load, seat_sort_key, waiting_sort_key
from shared.routing.model import Presence, QueueSettings
from shared.routing.settings import queue_settings

MAX_DECLINES = 3
SEAT_PAGE = 50
MAX_SEAT_PAGES = 20
WAITING_RANGE = (where("sortKey", ">=", "w|"), where("sortKey", "<", "w}"))
SEAT_RANGE = (where("sortKey", ">=", "s|"), where("sortKey", "<", "s}"))


def parse_time(value: str | None) -> datetime | None:
    return parse_stamp(value) if value else None


# Documents <-> engine values --------------------------------------------------------------------


def seat_of(agent: AgentDocument) -> Seat:
    return Seat(
        agent_id=agent.id,
        presence=agent.presence,
        capacity=agent.profile.capacity,
        used=agent.used,
        skills=dict(agent.profile.skills),
        languages=frozenset(agent.profile.languages),
        last_assigned_at=parse_time(agent.last_assigned_at),
        idle_since=parse_time(agent.idle_since),
    )


def seat_from_doc(doc: SeatDocument) -> Seat:
    return Seat(
        agent_id=doc.agent_id,
        presence=doc.presence,
        capacity=doc.capacity,
        used=doc.used,
        skills=dict(doc.skills),
        languages=frozenset(doc.languages),
        last_assigned_at=parse_time(doc.last_assigned_at),
        idle_since=parse_time(doc.idle_since),
    )


def seat_document(agent: AgentDocument, queue_id: str, settings: QueueSettings) -> SeatDocument:
    seat = seat_of(agent)
    return SeatDocument(
        id=f"seat:{agent.id}",
        queue_id=queue_id,
        agent_id=agent.id,
        presence=agent.presence,
        capacity=seat.capacity,
        used=seat.used,
        skills=dict(seat.skills),
        languages=sorted(seat.languages),
        last_assigned_at=agent.last_assigned_at,
        idle_since=agent.idle_since,
        rev=agent.rev,
        sort_key=seat_sort_key(settings.assignment_method, seat),
    )


# The two hot reads of a decision (a page of seats, a page of waiting entries) go from stored JSON
# straight to engine values: those documents are validated when written (SeatDocument,
# WaitingEntry) and read back here by their stored names (Stored.query_stored says why).


def seat_from_stored(item: Item) -> Seat:
    return Seat(
        agent_id=item["agentId"],
        presence=Presence(item["presence"]),
        capacity=item["capacity"],
        used=item["used"],
        skills=item["skills"],
        languages=frozenset(item["languages"]),
        last_assigned_at=parse_time(item.get("lastAssignedAt")),
        idle_since=parse_time(item.get("idleSince")),
    )


def waiting_from_stored(item: Item) -> Waiting:
    return Waiting(
        conversation_id=item["conversationId"],
        queue_id=item["queueId"],
        priority=item["priority"],
        enqueued_at=parse_stamp(item["enqueuedAt"]),
        language=item["language"] or "en",
        skills=item["skills"],
        excluded=frozenset(item["excluded"]),
        units=item["units"],
        avoided=frozenset(item["avoided"]),
    )


def waiting_of(entry: WaitingEntry) -> Waiting:
    return Waiting(
        conversation_id=entry.conversation_id,
        queue_id=entry.queue_id,
        priority=entry.priority,
        enqueued_at=parse_stamp(entry.enqueued_at),
        language=entry.language or "en",
        skills=dict(entry.skills),
        excluded=frozenset(entry.excluded),
        units=entry.units,
        avoided=frozenset(entry.avoided),
    )


def waiting_entry(conversation: ConversationDocument, enqueued_at: str, units: int) -> WaitingEntry:
    item = Waiting(
        conversation_id=conversation.id,
        queue_id=conversation.queue_id or DEFAULT_QUEUE,
        priority=conversation.priority,
        enqueued_at=parse_stamp(enqueued_at),
        language=conversation.language or "en",
        skills=dict(conversation.skills),
        excluded=frozenset(excluded_agents(conversation)),
        units=units,
        avoided=frozenset(conversation.offer_timeouts or {}),
    )
    return WaitingEntry(
        id=f"wait:{item.conversation_id}",
        queue_id=item.queue_id,
        conversation_id=item.conversation_id,
        priority=item.priority,
        enqueued_at=enqueued_at,
        language=item.language,
        skills=dict(item.skills),
        excluded=sorted(item.excluded),
        avoided=sorted(item.avoided),
        units=units,
        sort_key=waiting_sort_key(item),
    )


def excluded_agents(conversation: ConversationDocument) -> list[str]:
    """Agents who declined the conversation MAX_DECLINES times (an expired offer is no decline)."""
    return [agent for agent, n in conversation.declines.items() if n >= MAX_DECLINES]


def routing_message(kind: str, message_id: str, **fields: Any) -> OutgoingMessage:
    """A message on the `routing` queue (shared/routing/handler.py reads its `kind`)."""
    return json_message({"kind": kind, **fields}, message_id=message_id, subject=f"route-{kind}")


def route_request(conversation_id: str, why: str = "queued") -> OutgoingMessage:
    """Ask routing to route a conversation (`route:<cid>:<why>`: one per reason it is queued)."""
    return routing_message("conversation", f"route:{conversation_id}:{why}", conversationId=conversation_id)


# Seats --------------------------------------------------------------------------------------------


async def sync_seats(
    store: DocumentStore,
    agent: AgentDocument,
    removed: set[str] | frozenset[str] = frozenset(),
    known: dict[str, QueueSettings] | None = None,
) -> None:
    """Copy an agent's presence and load onto its seat in each of its queues (`known`: queue
    settings the caller has read already). A seat never goes back to an older revision of the
    agent (two syncs can race)."""
    routing = store.container(ROUTING)
    seats = Stored(store, ROUTING, SeatDocument)
    for queue_id in agent.profile.queues:
        settings = (known or {}).get(queue_id) or await queue_settings(routing, queue_id)
        await _write_seat(seats, seat_document(agent, queue_id, settings))
    for queue_id in removed:
        with contextlib.suppress(NotFound):
            await seats.delete(f"seat:{agent.id}", queue_id)


async def _write_seat(seats: Stored[SeatDocument], fresh: SeatDocument) -> None:
    async def step() -> None:
        current = await seats.read_or_none(fresh.id, fresh.queue_id)
        if current is None:
            try:
                await seats.create(fresh)
            except Conflict as error:
                raise PreconditionFailed("seat created concurrently") from error
            return
        if current.rev > fresh.rev:
            return
        await seats.replace(fresh.over(current))

    await retry(step)


async def refresh_queue_seats(store: DocumentStore, queue_id: str, settings: QueueSettings) -> None:
    """A queue's assignment method changed: re-key its seats (admin path, not per decision)."""
    seats = Stored(store, ROUTING, SeatDocument)
    agents = Stored(store, AGENTS, AgentDocument)
    page = await seats.query(Query((where("type", "=", "seat"),)), partition_key=queue_id, max_items=10_000)
    for doc in page.items:
        agent = await agents.read_or_none(doc.agent_id)
        if agent is not None:
            await _write_seat(seats, seat_document(agent, queue_id, settings))


def agent_after(
    agent: AgentDocument,
    now: datetime,
    *,
    held: dict[str, int] | None = None,
    chosen: Presence | None = None,
    **changes: Any,
) -> AgentDocument:
    """The agent document after its load (`held`) or chosen presence changed: `used`, the
    presence routing sees (by load), and the revision its seats are ordered by all follow."""
    held = dict(agent.conversations) if held is None else held
    chosen = agent.chosen_presence if chosen is None else Presence(chosen)
    used = sum(held.values())
    return with_presence_event(
        agent.changed(
            **changes,
            conversations=held,
            used=used,
            chosen_presence=chosen,
            presence=presence_for_load(chosen, used, agent.profile.capacity),
            rev=agent.rev + 1,
            updated_at=stamp(now),
        )
    )


def with_presence_event(agent: AgentDocument) -> AgentDocument:
    """The agent with its `agent.presence` event: every change of an agent is one (a change of
    load, of the presence chosen or seen, of capacity or queues), so agent utilization can be
    computed from events alone (docs/KPIS.md). Ids and counts only."""
    at = agent.updated_at or ""
    return agent.emit(
        "agent.presence",
        at,
        status=str(agent.presence),
        chosen=str(agent.chosen_presence),
        load=agent.used,
        capacity=agent.profile.capacity,
        queues=list(agent.profile.queues),
        at=at,
    )


async def seat_pages(
    seats: Stored[SeatDocument], queue_id: str, first: int = SEAT_PAGE
) -> AsyncIterator[dict[str, Seat]]:
    """A queue's seats best-first by its method, a page at a time (`first`: the first page's
    size); seats that cannot take work have no sort key and never appear."""
    continuation: str | None = None
    for n in range(MAX_SEAT_PAGES):
        page = await seats.query_stored(
            Query(SEAT_RANGE, order_by=(("sortKey", False),)),
            partition_key=queue_id,
            max_items=first if n == 0 else SEAT_PAGE,
            continuation=continuation,
        )
        yield {item["agentId"]: seat_from_stored(item) for item in page.items}
        continuation = page.continuation
        if continuation is None:
            return
