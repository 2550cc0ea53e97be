"""Assignment over the store: queue a conversation, find it an agent, offer it, release capacity.

The rules (who is eligible, who is best, which conversation first) are pure functions in
`shared.routing.engine`; this module feeds them small candidate sets read from the store and
applies their decision with ETag preconditions, because several function instances assign at
once and a process-local lock would protect nothing:

- The agent document is the truth about capacity: a reservation is an ETag-checked replace that
  adds the conversation to the agent's `conversations` map, so no agent ever goes above capacity.
- The conversation document is the truth about who has it: `waiting → offered` is an ETag-checked
  replace, so a conversation is offered to at most one agent.
- The agent is reserved first and the conversation offered second. A crash in between leaves an
  agent holding capacity for a conversation it was never offered (a leak the sweep repairs), never
  an agent over capacity.

Seats and waiting entries in the queue's `routing` partition are an index kept sorted by a
`sortKey` (best candidate first, longest waiting first), so a decision reads two short pages
instead of every agent and conversation: its cost does not grow with the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from shared.conversations.model import HOLDS_CAPACITY, Status, move
from shared.kernel import lists
from shared.kernel.clock import Clock
from shared.kernel.documents import Container, DocumentStore, Item, Query, where
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.etags import IfMatch, IfMatchFailed, check_if_match
from shared.kernel.messages import MessageBus
from shared.kernel.messaging import json_message
from shared.kernel.retry import retry
from shared.kernel.times import parse_stamp, stamp
from shared.routing.directory import (
    AGENTS,
    DEFAULT_QUEUE,
    ROUTING,
    RoutingDirectory,
    by_priority,
    presence_etag,
    queue_settings,
)
from shared.routing.engine import (
    Seat,
    Waiting,
    best_agent,
    can_take,
    is_open,
    next_for_agent,
    overflow_on_arrival,
    overflow_while_waiting,
    presence_for_load,
    seat_sort_key,
    waiting_key,
    waiting_sort_key,
)
from shared.routing.model import ROUTABLE, OverflowAction, Presence, QueueSettings, SkillMatch

log = logging.getLogger(__name__)

CONVERSATIONS = "conversations"
ROUTING_QUEUE = "routing"
MAX_DECLINES = 3
WAITING_PAGE = 25
SEAT_PAGE = 50
FIRST_SEAT_PAGE = 10
MAX_SEAT_PAGES = 20
IN_FLIGHT_GRACE = timedelta(seconds=5)
RESERVE_RETRIES = 3
LEASE_ID = "server"
LEASE_DURATION = timedelta(seconds=30)
_WAITING_RANGE = (where("sortKey", ">=", "w|"), where("sortKey", "<", "w}"))
_SEAT_RANGE = (where("sortKey", ">=", "s|"), where("sortKey", "<", "s}"))


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


def routing_message(kind: str, message_id: str, **fields: Any) -> Any:
    return json_message({"kind": kind, **fields}, message_id=message_id, subject=f"route-{kind}")


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


# The service --------------------------------------------------------------------------------------


class Assignment:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._routing = store.container(ROUTING)
        self._agents = store.container(AGENTS)
        self._conversations = store.container(CONVERSATIONS)
        self.directory = RoutingDirectory(store)
        self._arriving: Item | None = None  # the conversation `route_conversation` just read

    # Conversation arrives ------------------------------------------------------------------------

    async def route_conversation(self, conversation_id: str) -> None:
        """A conversation was queued (webhook, transfer, decline): apply overflow on arrival, put
        it in its queue's waiting order, and try to assign. Redelivery changes nothing."""
        try:
            conversation = await self._conversations.read(conversation_id, conversation_id)
        except NotFound:
            log.info("routing: conversation gone", extra={"conversation_id": conversation_id})
            return
        if conversation["status"] != Status.WAITING:
            return
        queue_id = conversation["queueId"]
        settings = await self.directory.queue(queue_id)
        entry_id = f"wait:{conversation_id}"
        arrival = waiting_entry(
            conversation, conversation.get("queuedAt") or stamp(self._clock.now()), settings.capacity_units
        )
        overflow_rules = settings.overflow.max_waiting is not None or settings.operating_hours is not None
        if overflow_rules:
            try:
                entry = await self._routing.read(entry_id, queue_id)
            except NotFound:
                if await self._overflows_on_arrival(queue_id, settings):
                    await self.overflow(conversation, settings, "arrival")
                    return
                entry = await self._create_entry(arrival)
        else:
            entry = await self._create_entry(arrival)
        self._arriving = conversation
        try:
            result = await self.assign_waiting(waiting_of(entry), settings)
        finally:
            self._arriving = None
        if result == "waiting":
            from shared.routing.deadlines import schedule_deadlines

            await schedule_deadlines(self._bus, entry, settings, self._clock.now())
        if result != "offered" and not conversation.get("routedAt"):
            await self._mark_routed(conversation)

    async def _create_entry(self, entry: Item) -> Item:
        try:
            return await self._routing.create(entry)
        except Conflict:  # a redelivery: it is queued already
            return await self._routing.read(entry["id"], entry["queueId"])

    async def assign_waiting(self, item: Waiting, settings: QueueSettings) -> str:
        """Find a waiting conversation an agent: one just arrived, or one whose exact match timed
        out. Conversations ahead of it that have waited longer than IN_FLIGHT_GRACE are waiting for
        an agent, so the queue is served in order instead; otherwise the entries ahead are only in
        flight (being routed by other workers at this moment) and racing them for the head of the
        queue would only multiply conflicts."""
        now = self._clock.now()
        page = await self._routing.query(
            Query(_WAITING_RANGE, order_by=(("sortKey", False),)),
            partition_key=item.queue_id,
            max_items=WAITING_PAGE,
        )
        mine = waiting_key(item)
        stuck = now - IN_FLIGHT_GRACE
        for entry in page.items:
            other = waiting_of(entry)
            if waiting_key(other) >= mine:
                break
            if other.enqueued_at <= stuck:
                served = await self.serve_backlog(item.queue_id)
                return "offered" if any(cid == item.conversation_id for cid, _ in served) else "waiting"
        return await self._assign_one(item, settings)

    async def _assign_one(self, item: Waiting, settings: QueueSettings) -> str:
        """Offer one conversation to the best agent that can still take it."""
        excluded: set[str] = set()
        seats: dict[str, Seat] = {}

        async def offer(*, settle: bool) -> str | None:
            while True:
                candidates = [seat for agent_id, seat in seats.items() if agent_id not in excluded]
                agent = best_agent(item, settings, candidates, self._clock.now())
                if agent is None or (agent.agent_id in item.avoided and not settle):
                    return None  # an agent it does not avoid may be on a later page
                result = await self.claim(item, agent.agent_id, settings)
                if result != "busy":
                    return result
                excluded.add(agent.agent_id)  # the seat was stale: the next best

        # Seats come best-first by the queue's method: with exact matching the first eligible one
        # is the answer, so a short first page suffices; closest matching ranks by fit first.
        first = FIRST_SEAT_PAGE if settings.skill_match is SkillMatch.EXACT else SEAT_PAGE
        async for page in self._seat_pages(item.queue_id, first):
            seats.update(page)
            if (result := await offer(settle=False)) is not None:
                return result
        if item.avoided and (result := await offer(settle=True)) is not None:
            return result  # nobody else: an agent who let an offer of it expire
        return "waiting"

    async def _mark_routed(self, conversation: Item) -> None:
        try:
            await self._conversations.replace(
                {**conversation, "routedAt": stamp(self._clock.now())}, etag=conversation["_etag"]
            )
            return
        except PreconditionFailed:
            pass

        async def step() -> None:
            doc = await self._conversations.read(conversation["id"], conversation["id"])
            if doc.get("routedAt"):
                return
            await self._conversations.replace(
                {**doc, "routedAt": stamp(self._clock.now())}, etag=doc["_etag"]
            )

        await retry(step)

    async def _overflows_on_arrival(self, queue_id: str, settings: QueueSettings) -> bool:
        now = self._clock.now()
        if not is_open(settings.operating_hours, now):
            return True
        limit = settings.overflow.max_waiting
        if limit is None:
            return False
        page = await self._routing.query(Query(_WAITING_RANGE), partition_key=queue_id, max_items=limit + 1)
        return overflow_on_arrival(settings, len(page.items), now)

    async def overflow(self, conversation: Item, settings: QueueSettings, when: str) -> None:
        """Unified routing's overflow action: transfer to the target queue, or end the conversation
        with the queue's message to the patient."""
        now = self._clock.now()
        overflow = settings.overflow
        conversation_id = conversation["id"]
        transfer_to = overflow.target_queue_id if overflow.action is OverflowAction.TRANSFER else None
        if transfer_to:
            # On the target's board list before the move, off this queue's after (lists.py).
            await lists.add(self._store, lists.live_entry(conversation, transfer_to))

        async def step() -> Item | None:
            doc = await self._conversations.read(conversation_id, conversation_id)
            if doc["status"] != Status.WAITING or doc["queueId"] != conversation["queueId"]:
                return None
            if transfer_to:
                moved = move(
                    doc,
                    "requeue",
                    now,
                    queueId=transfer_to,
                    queuedAt=stamp(now),
                    overflowedFrom=doc["queueId"],
                    by="routing",
                    cause=f"overflow-{when}",
                )
            else:
                text = overflow.message or "All our agents are busy. Please try again later."
                moved = move(
                    doc, "end", now, endReason=f"overflow-{when}", by="routing", cause=f"overflow-{when}"
                )
                moved["messages"] = [
                    *doc.get("messages", []),
                    {"from": "system", "text": text, "timestamp": stamp(now)},
                ]
            return await self._conversations.replace(moved, etag=doc["_etag"])

        moved = await retry(step)
        if moved is None:
            return
        with contextlib.suppress(NotFound):
            await self._routing.delete(f"wait:{conversation_id}", conversation["queueId"])
        old_list = lists.live_conversations_list(conversation["queueId"])
        await lists.remove(self._store, old_list, conversation_id)
        log.info(
            "routing: overflow",
            extra={
                "conversation_id": conversation_id,
                "queue": conversation["queueId"],
                "action": str(overflow.action),
            },
        )
        if moved["status"] == Status.WAITING:
            await self._bus.send(
                ROUTING_QUEUE,
                routing_message(
                    "conversation",
                    f"route:{conversation_id}:overflow:{len(moved.get('history', []))}",
                    conversationId=conversation_id,
                ),
            )

    # Decisions ------------------------------------------------------------------------------------

    async def serve_backlog(self, queue_id: str) -> list[tuple[str, str]]:
        """Serve a queue's backlog in order, one worker per queue at a time: the others would all
        race for the same head of the queue. The lease is only against that herd; correctness
        never depends on it (the ETags do that), and a dead holder's lease runs out."""
        assigned: list[tuple[str, str]] = []
        for _ in range(20):
            lease = await self._take_lease(queue_id)
            if lease is None:
                return assigned  # another worker is serving this queue
            try:
                served = await self.assign_queue(queue_id, limit=200)
            finally:
                await self._drop_lease(lease)
            assigned += served
            # A worker that found the lease taken left its conversation to us: look once more
            # after the release, so nothing that arrived meanwhile is left waiting.
            head = await self._routing.query(Query(_WAITING_RANGE), partition_key=queue_id, max_items=1)
            if not served or not head.items:
                break
        return assigned

    async def _take_lease(self, queue_id: str) -> Item | None:
        now = self._clock.now()
        try:
            current: Item | None = await self._routing.read(LEASE_ID, queue_id)
        except NotFound:
            current = None
        if current is not None and current.get("holder") and (parse_time(current.get("until")) or now) > now:
            return None
        fresh = {
            "id": LEASE_ID,
            "queueId": queue_id,
            "type": "lease",
            "holder": uuid.uuid4().hex,
            "until": stamp(now + LEASE_DURATION),
        }
        try:
            if current is None:
                return await self._routing.create(fresh)
            return await self._routing.replace(fresh, etag=current["_etag"])
        except (Conflict, PreconditionFailed):
            return None

    async def _drop_lease(self, lease: Item) -> None:
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._routing.replace({**lease, "holder": None, "until": None}, etag=lease["_etag"])

    async def assign_queue(self, queue_id: str, limit: int = 50) -> list[tuple[str, str]]:
        """Serve a queue in its waiting order while eligible agents have capacity. Each round
        plans a page of decisions with the engine (counting each planned offer against the
        agent's free capacity), then claims them: one agent's in turn, different agents at once."""
        settings = await self.directory.queue(queue_id)
        assigned: list[tuple[str, str]] = []
        while len(assigned) < limit:
            page = await self._routing.query(
                Query(_WAITING_RANGE, order_by=(("sortKey", False),)),
                partition_key=queue_id,
                max_items=WAITING_PAGE,
            )
            if not page.items:
                break
            seats = await self._seats(queue_id)
            if not seats:
                break
            now = self._clock.now()
            plan: dict[str, list[Waiting]] = {}
            planned = 0
            for entry in page.items:
                item = waiting_of(entry)
                agent = best_agent(item, settings, seats.values(), now)
                if agent is None:
                    continue
                plan.setdefault(agent.agent_id, []).append(item)
                seats[agent.agent_id] = dataclasses.replace(
                    agent, used=agent.used + item.units, last_assigned_at=now
                )
                planned += 1
                if planned >= limit - len(assigned):
                    break
            if not plan:
                break
            rounds = await asyncio.gather(
                *(self._claim_in_turn(agent_id, items, settings) for agent_id, items in plan.items())
            )
            done = [pair for claimed in rounds for pair in claimed]
            assigned += done
            if not done:
                break
        return assigned

    async def _claim_in_turn(
        self, agent_id: str, items: list[Waiting], settings: QueueSettings
    ) -> list[tuple[str, str]]:
        claimed: list[tuple[str, str]] = []
        for item in items:
            result = await self.claim(item, agent_id, settings)
            if result == "offered":
                claimed.append((item.conversation_id, agent_id))
            elif result == "busy":
                break  # the seat was stale: the next round re-reads the seats
        return claimed

    async def _seat_pages(self, queue_id: str, first: int = SEAT_PAGE) -> AsyncIterator[dict[str, Seat]]:
        """A queue's seats best-first by its method, a page at a time (`first`: the first page's
        size); seats that cannot take work have no sort key and never appear."""
        continuation: str | None = None
        for n in range(MAX_SEAT_PAGES):
            page = await self._routing.query(
                Query(_SEAT_RANGE, order_by=(("sortKey", False),)),
                partition_key=queue_id,
                max_items=first if n == 0 else SEAT_PAGE,
                continuation=continuation,
            )
            yield {doc["agentId"]: seat_from_doc(doc) for doc in page.items}
            continuation = page.continuation
            if continuation is None:
                return

    async def _seats(self, queue_id: str) -> dict[str, Seat]:
        """At least a page of the best seats: a round of decisions rarely needs more."""
        seats: dict[str, Seat] = {}
        async for page in self._seat_pages(queue_id):
            seats.update(page)
            if len(seats) >= SEAT_PAGE:
                break
        return seats

    async def claim(
        self,
        item: Waiting,
        agent_id: str,
        settings: QueueSettings,
        *,
        force: bool = False,
        by: str = "routing",
    ) -> str:
        """Reserve the agent, then offer the conversation. Returns `offered`, `busy` (the agent
        could not take it) or `gone` (the conversation is no longer waiting here)."""
        agent = await self.reserve(agent_id, item, force=force)
        if agent is None:
            return "busy"
        now = self._clock.now()
        conversation_id = item.conversation_id

        hint = (
            self._arriving if self._arriving is not None and self._arriving["id"] == conversation_id else None
        )

        async def step() -> Item | None:
            nonlocal hint
            # The arriving conversation was read a moment ago: try its ETag before reading again.
            doc, hint = (
                (hint, None)
                if hint is not None
                else (await self._conversations.read(conversation_id, conversation_id), None)
            )
            if doc["status"] in HOLDS_CAPACITY and doc.get("agentId") == agent_id:
                return doc  # a concurrent worker made the same offer
            if doc["status"] != Status.WAITING or doc["queueId"] != item.queue_id:
                return None
            moved = move(
                doc,
                "offer",
                now,
                agentId=agent_id,
                offerExpiresAt=stamp(now + timedelta(seconds=settings.accept_timeout_seconds)),
                offerSeq=int(doc.get("offerSeq", 0)) + 1,
                by=by,
            )
            moved.setdefault("routedAt", None)
            moved["routedAt"] = moved["routedAt"] or stamp(now)
            return await self._conversations.replace(moved, etag=doc["_etag"])

        try:
            offered = await retry(step)
        except NotFound:
            offered = None
        if offered is None:
            await self.release(agent_id, conversation_id, notify=False)
            await self._drop_entry(item)
            return "gone"
        await self._drop_entry(item)
        await sync_seats(self._routing, agent, known={item.queue_id: settings})
        await self._bus.schedule(
            ROUTING_QUEUE,
            routing_message(
                "offer-timeout",
                f"offer-timeout:{conversation_id}:{offered['offerSeq']}",
                conversationId=conversation_id,
                offerSeq=offered["offerSeq"],
            ),
            parse_time(offered["offerExpiresAt"]) or now,
        )
        log.info(
            "routing: offered",
            extra={"conversation_id": conversation_id, "agent_id": agent_id, "queue": item.queue_id},
        )
        return "offered"

    async def _drop_entry(self, item: Waiting) -> None:
        with contextlib.suppress(NotFound):
            await self._routing.delete(f"wait:{item.conversation_id}", item.queue_id)

    async def reserve(self, agent_id: str, item: Waiting, *, force: bool = False) -> Item | None:
        """Add the conversation to the agent's load if the agent can take it now (ETag-checked)."""
        now = self._clock.now()

        async def step() -> Item | None:
            try:
                doc = await self._agents.read(agent_id, agent_id)
            except NotFound:
                return None
            held = dict(doc.get("conversations", {}))
            if item.conversation_id in held:
                return doc
            if not force and not can_take(seat_of(doc), item):
                return None
            held[item.conversation_id] = item.units
            fresh = agent_after(doc, now, held=held, lastAssignedAt=stamp(now))
            return await self._agents.replace(fresh, etag=doc["_etag"])

        try:
            result: Item | None = await retry(step, attempts=RESERVE_RETRIES)
        except PreconditionFailed:
            # Other workers keep winning this agent: let the caller try the next best one
            # rather than queue behind them (under load every worker ranks the same agent first).
            return None
        return result

    async def release(
        self,
        agent_id: str | None,
        conversation_id: str,
        *,
        notify: bool = True,
        notify_after: timedelta = timedelta(0),
    ) -> None:
        """Give back the capacity an agent holds for a conversation; then look for its next work
        (`notify_after` from now)."""
        if not agent_id:
            return
        now = self._clock.now()

        async def step() -> Item | None:
            try:
                doc = await self._agents.read(agent_id, agent_id)
            except NotFound:
                return None
            held = dict(doc.get("conversations", {}))
            if conversation_id not in held:
                return None
            del held[conversation_id]
            idle = stamp(now) if not held else doc.get("idleSince")
            return await self._agents.replace(
                agent_after(doc, now, held=held, idleSince=idle), etag=doc["_etag"]
            )

        fresh = await retry(step)
        if fresh is None:
            return
        await sync_seats(self._routing, fresh)
        if notify:
            await self.notify_agent(fresh, after=notify_after)

    async def notify_agent(self, agent: Item, *, after: timedelta = timedelta(0)) -> None:
        """Ask routing to look for work for an agent whose presence or load changed."""
        message = routing_message("agent", f"agent:{agent['id']}:{agent.get('rev', 0)}", agentId=agent["id"])
        if after > timedelta(0):
            await self._bus.schedule(ROUTING_QUEUE, message, self._clock.now() + after)
        else:
            await self._bus.send(ROUTING_QUEUE, message)

    async def set_presence(self, agent_id: str, chosen: Presence, *, if_match: IfMatch | None = None) -> Item:
        """The agent's own choice of presence. `if_match` names a presence version
        (`presence_etag`): the agent's other sessions' presence changes make it fail, routing's
        own writes of load and effective presence do not."""
        now = self._clock.now()

        async def step() -> Item:
            doc = await self._agents.read(agent_id, agent_id)
            check_if_match(if_match, presence_etag(doc), "presence")
            idle = doc.get("idleSince") or (stamp(now) if not doc.get("conversations") else None)
            version = int(doc.get("presenceVersion", 0)) + 1
            fresh = agent_after(doc, now, chosen=chosen, idleSince=idle, presenceVersion=version)
            return await self._agents.replace(fresh, etag=doc["_etag"])

        try:
            fresh: Item = await retry(step)
        except NotFound:
            if if_match is not None:
                raise IfMatchFailed("You are not registered as an agent (If-Match).") from None
            raise NotFound("you are not registered as an agent") from None
        await sync_seats(self._routing, fresh)
        if fresh["presence"] in (Presence.AVAILABLE, Presence.BUSY):
            await self.notify_agent(fresh)
        return fresh

    async def assign_for_agent(self, agent_id: str, limit: int = 20) -> list[tuple[str, str]]:
        """An agent can take work: serve its queues by priority number, each in waiting order."""
        assigned: list[tuple[str, str]] = []
        index = await self.directory.queue_index()
        while len(assigned) < limit:
            try:
                agent = await self._agents.read(agent_id, agent_id)
            except NotFound:
                break
            seat = seat_of(agent)
            if seat.free <= 0 or seat.presence not in ROUTABLE:
                break
            mine = agent["profile"].get("queues", [])
            queue_ids = by_priority({q: index.get(q, 10**6) for q in mine})
            candidates: list[tuple[QueueSettings, list[Waiting]]] = []
            for queue_id in queue_ids:
                settings = await self.directory.queue(queue_id)
                page = await self._routing.query(
                    Query(_WAITING_RANGE, order_by=(("sortKey", False),)),
                    partition_key=queue_id,
                    max_items=WAITING_PAGE,
                )
                if page.items:
                    candidates.append((settings, [waiting_of(e) for e in page.items]))
            item = next_for_agent(seat, candidates, self._clock.now())
            if item is None:
                break
            settings = next(s for s, items in candidates if item in items)
            result = await self.claim(item, agent_id, settings)
            if result == "offered":
                assigned.append((item.conversation_id, agent_id))
            elif result == "busy":
                break
        return assigned

    # Sweep -----------------------------------------------------------------------------------------

    async def sweep(self) -> dict[str, int]:
        """Timer backstop (every 5 minutes by default): each timed rule fires from its own scheduled
        message (routing_deadlines, offer-timeout, wrapup-end); this catches what a lost message or
        a setting changed to an earlier deadline left behind: overflow by wait, stale offers and
        wrap-ups, and assignment retried in every queue (an exact match that timed out)."""
        from shared.conversations.lifecycle import Lifecycle

        now = self._clock.now()
        lifecycle = Lifecycle(self._store, self._bus, self._clock)
        counts = {"overflowed": 0, "expiredOffers": 0, "closedWrapups": 0, "assigned": 0}
        index = await self.directory.queue_index()
        for queue_id in [*by_priority(index), DEFAULT_QUEUE]:
            settings = await self.directory.queue(queue_id)
            limit = settings.overflow.max_wait_seconds
            if limit is not None:
                cutoff = stamp(now - timedelta(seconds=limit))
                page = await self._routing.query(
                    Query((where("type", "=", "waiting"), where("enqueuedAt", "<=", cutoff))),
                    partition_key=queue_id,
                    max_items=200,
                )
                for entry in page.items:
                    if overflow_while_waiting(settings, waiting_of(entry), now):
                        try:
                            conversation = await self._conversations.read(
                                entry["conversationId"], entry["conversationId"]
                            )
                        except NotFound:
                            await self._drop_entry(waiting_of(entry))
                            continue
                        await self.overflow(conversation, settings, "wait")
                        counts["overflowed"] += 1
            counts["assigned"] += len(await self.serve_backlog(queue_id))
        # Offers and wrap-ups past their time (their scheduled message normally does this).
        for status, field, action in (
            (Status.OFFERED, "offerExpiresAt", lifecycle.expire_offer),
            (Status.WRAPUP, "wrapupEndsAt", lifecycle.end_wrapup),
        ):
            page = await self._conversations.query_cross_partition(
                Query((where("status", "=", str(status)), where(field, "<=", stamp(now)))), max_items=200
            )
            for doc in page.items:
                if await action(doc["id"], doc.get("offerSeq")):
                    counts["expiredOffers" if status == Status.OFFERED else "closedWrapups"] += 1
        counts["repaired"] = await self._repair_leaks()
        return counts

    async def _repair_leaks(self) -> int:
        """Release capacity an agent holds for a conversation it does not have (a worker died
        between reserving the agent and offering the conversation)."""
        repaired = 0
        page = await self._agents.query_cross_partition(Query((where("used", ">", 0),)), max_items=1000)
        stale_before = self._clock.now() - timedelta(seconds=60)
        for agent in page.items:
            for conversation_id in list(agent.get("conversations", {})):
                try:
                    doc = await self._conversations.read(conversation_id, conversation_id)
                except NotFound:
                    doc = None
                held = (
                    doc is not None and doc["status"] in HOLDS_CAPACITY and doc.get("agentId") == agent["id"]
                )
                updated = parse_time(agent.get("updatedAt"))
                if not held and (updated is None or updated < stale_before):
                    await self.release(agent["id"], conversation_id)
                    repaired += 1
        return repaired


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


async def handle_routing_message(
    store: DocumentStore, bus: MessageBus, clock: Clock, body: dict[str, Any]
) -> None:
    """One routing request from the `routing` queue; every kind is idempotent."""
    from shared.conversations.lifecycle import Lifecycle

    assignment = Assignment(store, bus, clock)
    kind = body.get("kind")
    if kind == "conversation":
        await assignment.route_conversation(str(body["conversationId"]))
    elif kind == "agent":
        await assignment.assign_for_agent(str(body["agentId"]))
    elif kind == "queue":
        await assignment.serve_backlog(str(body["queueId"]))
    elif kind == "offer-timeout":
        await Lifecycle(store, bus, clock).expire_offer(str(body["conversationId"]), body.get("offerSeq"))
    elif kind == "wrapup-end":
        await Lifecycle(store, bus, clock).end_wrapup(str(body["conversationId"]), None)
    elif kind in ("exact-timeout", "wait-timeout"):
        from shared.routing.deadlines import on_deadline

        await on_deadline(store, bus, clock, body)
    else:
        raise ValueError(f"unknown routing message kind {kind!r}")
