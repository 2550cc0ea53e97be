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

from shared.kernel.documents import Container, Item, Query, where
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.messages import OutgoingMessage
from shared.kernel.messaging import json_message
from shared.kernel.retry import retry
from shared.kernel.times import parse_stamp, stamp
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


def seat_of(agent: Item) -> Seat:
    profile = agent["profile"]
    return Seat(
        agent_id=agent["id"],
        presence=Presence(agent["presence"]),
        capacity=int(profile.get("capacity", 1)),
        used=int(agent.get("used", 0)),
        skills=dict(profile.get("skills", {})),
        languages=frozenset(profile.get("languages", ())),
        last_assigned_at=parse_time(agent.get("lastAssignedAt")),
        idle_since=parse_time(agent.get("idleSince")),
    )


def seat_from_doc(doc: Item) -> Seat:
    return Seat(
        agent_id=doc["agentId"],
        presence=Presence(doc["presence"]),
        capacity=int(doc["capacity"]),
        used=int(doc["used"]),
        skills=dict(doc.get("skills", {})),
        languages=frozenset(doc.get("languages", ())),
        last_assigned_at=parse_time(doc.get("lastAssignedAt")),
        idle_since=parse_time(doc.get("idleSince")),
    )


def seat_document(agent: Item, queue_id: str, settings: QueueSettings) -> Item:
    seat = seat_of(agent)
    doc: Item = {
        "id": f"seat:{agent['id']}",
        "queueId": queue_id,
        "type": "seat",
        "agentId": agent["id"],
        "presence": agent["presence"],
        "capacity": seat.capacity,
        "used": seat.used,
        "skills": dict(seat.skills),
        "languages": sorted(seat.languages),
        "lastAssignedAt": agent.get("lastAssignedAt"),
        "idleSince": agent.get("idleSince"),
        "rev": int(agent.get("rev", 0)),
    }
    key = seat_sort_key(settings.assignment_method, seat)
    if key is not None:
        doc["sortKey"] = key
    return doc


def waiting_of(entry: Item) -> Waiting:
    return Waiting(
        conversation_id=entry["conversationId"],
        queue_id=entry["queueId"],
        priority=int(entry["priority"]),
        enqueued_at=parse_stamp(entry["enqueuedAt"]),
        language=entry.get("language") or "en",
        skills=dict(entry.get("skills", {})),
        excluded=frozenset(entry.get("excluded", ())),
        units=int(entry.get("units", 1)),
        avoided=frozenset(entry.get("avoided", ())),
    )


def waiting_entry(conversation: Item, enqueued_at: str, units: int) -> Item:
    item = Waiting(
        conversation_id=conversation["id"],
        queue_id=conversation["queueId"],
        priority=int(conversation.get("priority", 1)),
        enqueued_at=parse_stamp(enqueued_at),
        language=conversation.get("language") or "en",
        skills=dict(conversation.get("skills", {})),
        excluded=frozenset(excluded_agents(conversation)),
        units=units,
        avoided=frozenset(conversation.get("offerTimeouts", {})),
    )
    return {
        "id": f"wait:{conversation['id']}",
        "queueId": conversation["queueId"],
        "type": "waiting",
        "conversationId": conversation["id"],
        "priority": item.priority,
        "enqueuedAt": enqueued_at,
        "language": item.language,
        "skills": dict(item.skills),
        "excluded": sorted(item.excluded),
        "avoided": sorted(item.avoided),
        "units": units,
        "sortKey": waiting_sort_key(item),
    }


def excluded_agents(conversation: Item) -> list[str]:
    """Agents who declined the conversation MAX_DECLINES times (an expired offer is no decline)."""
    return [agent for agent, n in conversation.get("declines", {}).items() if n >= MAX_DECLINES]


def routing_message(kind: str, message_id: str, **fields: Any) -> OutgoingMessage:
    """A message on the `routing` queue (shared/routing/handler.py reads its `kind`)."""
    return json_message({"kind": kind, **fields}, message_id=message_id, subject=f"route-{kind}")


def route_request(conversation_id: str, why: str = "queued") -> OutgoingMessage:
    """Ask routing to route a conversation (`route:<cid>:<why>`: one per reason it is queued)."""
    return routing_message("conversation", f"route:{conversation_id}:{why}", conversationId=conversation_id)


# Seats --------------------------------------------------------------------------------------------


async def sync_seats(
    routing: Container,
    agent: Item,
    removed: set[str] | frozenset[str] = frozenset(),
    known: dict[str, QueueSettings] | None = None,
) -> None:
    """Copy an agent's presence and load onto its seat in each of its queues (`known`: queue
    settings the caller has read already). A seat never goes back to an older revision of the
    agent (two syncs can race)."""
    for queue_id in agent["profile"].get("queues", []):
        settings = (known or {}).get(queue_id) or await queue_settings(routing, queue_id)
        await _write_seat(routing, seat_document(agent, queue_id, settings))
    for queue_id in removed:
        with contextlib.suppress(NotFound):
            await routing.delete(f"seat:{agent['id']}", queue_id)


async def _write_seat(routing: Container, fresh: Item) -> None:
    async def step() -> None:
        try:
            current = await routing.read(fresh["id"], fresh["queueId"])
        except NotFound:
            try:
                await routing.create(fresh)
            except Conflict as error:
                raise PreconditionFailed("seat created concurrently") from error
            return
        if int(current.get("rev", 0)) > fresh["rev"]:
            return
        await routing.replace(fresh, etag=current["_etag"])

    await retry(step)


async def refresh_queue_seats(
    routing: Container, agents: Container, queue_id: str, settings: QueueSettings
) -> None:
    """A queue's assignment method changed: re-key its seats (admin path, not per decision)."""
    page = await routing.query(Query((where("type", "=", "seat"),)), partition_key=queue_id, max_items=10_000)
    for doc in page.items:
        try:
            agent = await agents.read(doc["agentId"], doc["agentId"])
        except NotFound:
            continue
        await _write_seat(routing, seat_document(agent, queue_id, settings))


def _capacity(agent: Item) -> int:
    return int(agent["profile"].get("capacity", 1))


def agent_after(
    agent: Item,
    now: datetime,
    *,
    held: dict[str, int] | None = None,
    chosen: Presence | None = None,
    **changes: Any,
) -> Item:
    """The agent document after its load (`held`) or chosen presence changed: `used`, the
    presence routing sees (by load), and the revision its seats are ordered by all follow."""
    held = dict(agent.get("conversations", {})) if held is None else held
    chosen = Presence(agent["chosenPresence"]) if chosen is None else chosen
    used = sum(held.values())
    return {
        **agent,
        **changes,
        "conversations": held,
        "used": used,
        "chosenPresence": str(chosen),
        "presence": str(presence_for_load(chosen, used, _capacity(agent))),
        "rev": int(agent.get("rev", 0)) + 1,
        "updatedAt": stamp(now),
    }


async def seat_pages(
    routing: Container, queue_id: str, first: int = SEAT_PAGE
) -> AsyncIterator[dict[str, Seat]]:
    """A queue's seats best-first by its method, a page at a time (`first`: the first page's
    size); seats that cannot take work have no sort key and never appear."""
    continuation: str | None = None
    for n in range(MAX_SEAT_PAGES):
        page = await routing.query(
            Query(SEAT_RANGE, order_by=(("sortKey", False),)),
            partition_key=queue_id,
            max_items=first if n == 0 else SEAT_PAGE,
            continuation=continuation,
        )
        yield {doc["agentId"]: seat_from_doc(doc) for doc in page.items}
        continuation = page.continuation
        if continuation is None:
            return
