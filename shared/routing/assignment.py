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
instead of every agent and conversation: its cost does not grow with the queue
(shared/routing/seats.py). Conversations are read and changed through
`shared.conversations.api`; a queue's backlog is served by shared/routing/backlog.py.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from shared.conversations.api import (
    DEFAULT_QUEUE,
    HOLDS_CAPACITY,
    RETURN_GRACE,
    Author,
    ConversationDocument,
    Status,
    append_message,
    conversations,
    move,
)
from shared.kernel.catalog import AGENTS, ROUTING, ROUTING_QUEUE
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.etags import IfMatch, IfMatchFailed, check_if_match
from shared.kernel.messages import MessageBus
from shared.kernel.outbox import Aggregates
from shared.kernel.retry import retry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.routing.backlog import WAITING_PAGE, Backlog
from shared.routing.deadlines import schedule_deadlines
from shared.routing.directory import RoutingDirectory, by_priority, presence_etag
from shared.routing.documents import AgentDocument, SeatDocument, WaitingEntry
from shared.routing.engine import (
    Seat,
    Waiting,
    best_agent,
    can_take,
    is_open,
    next_for_agent,
    overflow_on_arrival,
    waiting_key,
)
from shared.routing.model import ROUTABLE, OverflowAction, Presence, QueueSettings, SkillMatch
from shared.routing.seats import (
    SEAT_PAGE,
    WAITING_RANGE,
    agent_after,
    parse_time,
    routing_message,
    seat_of,
    seat_pages,
    sync_seats,
    waiting_entry,
    waiting_from_stored,
    waiting_of,
)

log = logging.getLogger(__name__)

FIRST_SEAT_PAGE = 10
IN_FLIGHT_GRACE = timedelta(seconds=5)
RESERVE_RETRIES = 3


class Assignment:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.routing = store.container(ROUTING)
        self.entries = Stored(store, ROUTING, WaitingEntry)
        self.seats = Stored(store, ROUTING, SeatDocument)
        self.agents = Aggregates(store, AGENTS, AgentDocument)
        self.directory = RoutingDirectory(store)
        self._arriving: ConversationDocument | None = None  # the conversation `route_conversation` just read

    # Conversation arrives ------------------------------------------------------------------------

    async def route_conversation(self, conversation_id: str) -> None:
        """A conversation was queued (webhook, transfer, decline): apply overflow on arrival, put
        it in its queue's waiting order, and try to assign. Redelivery changes nothing."""
        conversation = await conversations.read_or_none(self.store, conversation_id)
        if conversation is None:
            log.info("routing: conversation gone", extra={"conversation_id": conversation_id})
            return
        if conversation.status != Status.WAITING:
            return
        queue_id = conversation.queue_id or DEFAULT_QUEUE
        settings = await self.directory.queue(queue_id)
        entry_id = f"wait:{conversation_id}"
        arrival = waiting_entry(
            conversation, conversation.queued_at or stamp(self.clock.now()), settings.capacity_units
        )
        overflow_rules = settings.overflow.max_waiting is not None or settings.operating_hours is not None
        if overflow_rules:
            try:
                entry = await self.entries.read(entry_id, queue_id)
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
            await schedule_deadlines(self.bus, entry, settings, self.clock.now())
        if result != "offered" and not conversation.routed_at:
            await self._mark_routed(conversation)

    async def _create_entry(self, entry: WaitingEntry) -> WaitingEntry:
        try:
            return await self.entries.create(entry)
        except Conflict:  # a redelivery: it is queued already
            return await self.entries.read(entry.id, entry.queue_id)

    async def assign_waiting(self, item: Waiting, settings: QueueSettings) -> str:
        """Find a waiting conversation an agent: one just arrived, or one whose exact match timed
        out. Conversations ahead of it that have waited longer than IN_FLIGHT_GRACE are waiting for
        an agent, so the queue is served in order instead; otherwise the entries ahead are only in
        flight (being routed by other workers at this moment) and racing them for the head of the
        queue would only multiply conflicts."""
        now = self.clock.now()
        page = await self.entries.query_stored(
            Query(WAITING_RANGE, order_by=(("sortKey", False),)),
            partition_key=item.queue_id,
            max_items=WAITING_PAGE,
        )
        mine = waiting_key(item)
        stuck = now - IN_FLIGHT_GRACE
        for entry in page.items:
            other = waiting_from_stored(entry)
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
                agent = best_agent(item, settings, candidates, self.clock.now())
                if agent is None or (agent.agent_id in item.avoided and not settle):
                    return None  # an agent it does not avoid may be on a later page
                result = await self.claim(item, agent.agent_id, settings)
                if result != "busy":
                    return result
                excluded.add(agent.agent_id)  # the seat was stale: the next best

        # Seats come best-first by the queue's method: with exact matching the first eligible one
        # is the answer, so a short first page suffices; closest matching ranks by fit first.
        first = FIRST_SEAT_PAGE if settings.skill_match is SkillMatch.EXACT else SEAT_PAGE
        async for page in seat_pages(self.seats, item.queue_id, first):
            seats.update(page)
            if (result := await offer(settle=False)) is not None:
                return result
        if item.avoided and (result := await offer(settle=True)) is not None:
            return result  # nobody else: an agent who let an offer of it expire
        return "waiting"

    async def _mark_routed(self, conversation: ConversationDocument) -> None:
        try:
            await conversations.replace(self.store, conversation.changed(routed_at=stamp(self.clock.now())))
            return
        except PreconditionFailed:
            pass

        async def step() -> None:
            doc = await conversations.read(self.store, conversation.id)
            if doc.routed_at:
                return
            await conversations.replace(self.store, doc.changed(routed_at=stamp(self.clock.now())))

        await retry(step)

    async def _overflows_on_arrival(self, queue_id: str, settings: QueueSettings) -> bool:
        now = self.clock.now()
        if not is_open(settings.operating_hours, now):
            return True
        limit = settings.overflow.max_waiting
        if limit is None:
            return False
        page = await self.entries.query(Query(WAITING_RANGE), partition_key=queue_id, max_items=limit + 1)
        return overflow_on_arrival(settings, len(page.items), now)

    async def overflow(self, conversation: ConversationDocument, settings: QueueSettings, when: str) -> None:
        """Unified routing's overflow action: transfer to the target queue, or end the conversation
        with the queue's message to the patient."""
        now = self.clock.now()
        overflow = settings.overflow
        conversation_id = conversation.id
        transfer_to = overflow.target_queue_id if overflow.action is OverflowAction.TRANSFER else None
        target_level = (
            (await self.directory.queue(transfer_to)).service_level_seconds if transfer_to else None
        )
        if transfer_to:
            # On the target's board list before the move, off this queue's after (lists.py).
            await conversations.list_live(self.store, conversation, transfer_to)

        async def step() -> ConversationDocument | None:
            doc = await conversations.read(self.store, conversation_id)
            if doc.status != Status.WAITING or doc.queue_id != conversation.queue_id:
                return None
            if transfer_to:
                moved = move(
                    doc,
                    "requeue",
                    now,
                    queueId=transfer_to,
                    queuedAt=stamp(now),
                    serviceLevelSeconds=target_level,
                    overflowedFrom=doc.queue_id,
                    by="routing",
                    cause=f"overflow-{when}",
                )
            else:
                text = overflow.message or "All our agents are busy. Please try again later."
                moved = move(
                    doc, "end", now, endReason=f"overflow-{when}", by="routing", cause=f"overflow-{when}"
                )
                # The queue's message to the patient, written with the end.
                moved, children = append_message(
                    moved, author=Author(role="system"), visibility="patient", text=text, at=stamp(now)
                )
                return await conversations.replace(self.store, moved, children)
            return await conversations.replace(self.store, moved)

        moved = await retry(step)
        if moved is None:
            return
        await self.drop_entry(conversation_id, conversation.queue_id or DEFAULT_QUEUE)
        await conversations.unlist_live(self.store, conversation.queue_id, conversation_id)
        log.info(
            "routing: overflow",
            extra={
                "conversation_id": conversation_id,
                "queue": conversation.queue_id,
                "action": str(overflow.action),
            },
        )
        if moved.status == Status.WAITING:
            await self.bus.send(
                ROUTING_QUEUE,
                routing_message(
                    "conversation",
                    f"route:{conversation_id}:overflow:{len(moved.history)}",
                    conversationId=conversation_id,
                ),
            )

    # Decisions ------------------------------------------------------------------------------------

    async def serve_backlog(self, queue_id: str) -> list[tuple[str, str]]:
        """Serve a queue's backlog in waiting order (shared/routing/backlog.py)."""
        return await Backlog(self).serve(queue_id)

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
        now = self.clock.now()
        conversation_id = item.conversation_id

        hint = self._arriving if self._arriving is not None and self._arriving.id == conversation_id else None

        async def step() -> ConversationDocument | None:
            nonlocal hint
            # The arriving conversation was read a moment ago: try its ETag before reading again.
            doc, hint = (
                (hint, None)
                if hint is not None
                else (await conversations.read(self.store, conversation_id), None)
            )
            if doc.status in HOLDS_CAPACITY and doc.agent_id == agent_id:
                return doc  # a concurrent worker made the same offer
            if doc.status != Status.WAITING or doc.queue_id != item.queue_id:
                return None
            moved = move(
                doc,
                "offer",
                now,
                agentId=agent_id,
                offerExpiresAt=stamp(now + timedelta(seconds=settings.accept_timeout_seconds)),
                offerSeq=int(doc.offer_seq or 0) + 1,
                by=by,
            )
            moved = moved.changed(routed_at=moved.routed_at or stamp(now))
            return await conversations.replace(self.store, moved)

        try:
            offered = await retry(step)
        except NotFound:
            offered = None
        if offered is None:
            await self.release(agent_id, conversation_id, notify=False)
            await self._drop_entry(item)
            return "gone"
        await self._drop_entry(item)
        await sync_seats(self.store, agent, known={item.queue_id: settings})
        await self.bus.schedule(
            ROUTING_QUEUE,
            routing_message(
                "offer-timeout",
                f"offer-timeout:{conversation_id}:{offered.offer_seq}",
                conversationId=conversation_id,
                offerSeq=offered.offer_seq,
            ),
            parse_time(offered.offer_expires_at) or now,
        )
        log.info(
            "routing: offered",
            extra={"conversation_id": conversation_id, "agent_id": agent_id, "queue": item.queue_id},
        )
        return "offered"

    async def _drop_entry(self, item: Waiting) -> None:
        await self.drop_entry(item.conversation_id, item.queue_id)

    async def drop_entry(self, conversation_id: str, queue_id: str) -> None:
        """Out of the queue's waiting order (idempotent)."""
        with contextlib.suppress(NotFound):
            await self.entries.delete(f"wait:{conversation_id}", queue_id)

    async def requeue_entry(self, doc: ConversationDocument) -> None:
        """Back into the waiting order at its original place (it keeps its waiting time)."""
        settings = await self.directory.queue(doc.queue_id or DEFAULT_QUEUE)
        entry = waiting_entry(doc, doc.queued_at or stamp(self.clock.now()), settings.capacity_units)
        await self.entries.upsert(entry)

    # What conversations tell routing (shared/conversations/notices.py) -----------------------------

    async def returned(self, conversation_id: str, agent_id: str, *, expired: bool) -> None:
        """An offer came back (declined or expired): the agent's capacity returns (after an expiry
        the agent is asked for work a little later, so this conversation is routed first and ranks
        them last), the conversation goes back to its place in the queue and is routed again."""
        await self.release(agent_id, conversation_id, notify_after=RETURN_GRACE if expired else timedelta(0))
        doc = await conversations.read_or_none(self.store, conversation_id)
        if doc is None or doc.status != Status.WAITING:
            return
        await self.requeue_entry(doc)
        await self.route_conversation(conversation_id)

    async def ended(self, conversation_id: str, queue_id: str | None, agent_id: str | None) -> None:
        """The conversation is over: out of its queue's waiting order, the agent's capacity back."""
        if queue_id:
            await self.drop_entry(conversation_id, queue_id)
        await self.release(agent_id, conversation_id)

    async def reserve(self, agent_id: str, item: Waiting, *, force: bool = False) -> AgentDocument | None:
        """Add the conversation to the agent's load if the agent can take it now (ETag-checked)."""
        now = self.clock.now()

        async def step() -> AgentDocument | None:
            doc = await self.agents.read_or_none(agent_id)
            if doc is None:
                return None
            held = dict(doc.conversations)
            if item.conversation_id in held:
                return doc
            if not force and not can_take(seat_of(doc), item):
                return None
            held[item.conversation_id] = item.units
            return await self.agents.replace(agent_after(doc, now, held=held, last_assigned_at=stamp(now)))

        try:
            result: AgentDocument | None = await retry(step, attempts=RESERVE_RETRIES)
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
        now = self.clock.now()

        async def step() -> AgentDocument | None:
            doc = await self.agents.read_or_none(agent_id)
            if doc is None or conversation_id not in doc.conversations:
                return None
            held = {k: v for k, v in doc.conversations.items() if k != conversation_id}
            idle = stamp(now) if not held else doc.idle_since
            return await self.agents.replace(agent_after(doc, now, held=held, idle_since=idle))

        fresh = await retry(step)
        if fresh is None:
            return
        await sync_seats(self.store, fresh)
        if notify:
            await self.notify_agent(fresh, after=notify_after)

    async def notify_agent(self, agent: AgentDocument, *, after: timedelta = timedelta(0)) -> None:
        """Ask routing to look for work for an agent whose presence or load changed."""
        message = routing_message("agent", f"agent:{agent.id}:{agent.rev}", agentId=agent.id)
        if after > timedelta(0):
            await self.bus.schedule(ROUTING_QUEUE, message, self.clock.now() + after)
        else:
            await self.bus.send(ROUTING_QUEUE, message)

    async def set_presence(
        self, agent_id: str, chosen: Presence, *, if_match: IfMatch | None = None
    ) -> AgentDocument:
        """The agent's own choice of presence. `if_match` names a presence version
        (`presence_etag`): the agent's other sessions' presence changes make it fail, routing's
        own writes of load and effective presence do not."""
        now = self.clock.now()

        async def step() -> AgentDocument:
            doc = await self.agents.read(agent_id)
            check_if_match(if_match, presence_etag(doc), "presence")
            idle = doc.idle_since or (stamp(now) if not doc.conversations else None)
            fresh = agent_after(
                doc, now, chosen=chosen, idle_since=idle, presence_version=doc.presence_version + 1
            )
            return await self.agents.replace(fresh)

        try:
            fresh: AgentDocument = await retry(step)
        except NotFound:
            if if_match is not None:
                raise IfMatchFailed("You are not registered as an agent (If-Match).") from None
            raise NotFound("you are not registered as an agent") from None
        await sync_seats(self.store, fresh)
        if fresh.presence in (Presence.AVAILABLE, Presence.BUSY):
            await self.notify_agent(fresh)
        return fresh

    async def assign_for_agent(self, agent_id: str, limit: int = 20) -> list[tuple[str, str]]:
        """An agent can take work: serve its queues by priority number, each in waiting order."""
        assigned: list[tuple[str, str]] = []
        index = await self.directory.queue_index()
        while len(assigned) < limit:
            agent = await self.agents.read_or_none(agent_id)
            if agent is None:
                break
            seat = seat_of(agent)
            if seat.free <= 0 or seat.presence not in ROUTABLE:
                break
            mine = agent.profile.queues
            queue_ids = by_priority({q: index.get(q, 10**6) for q in mine})
            candidates: list[tuple[QueueSettings, list[Waiting]]] = []
            for queue_id in queue_ids:
                settings = await self.directory.queue(queue_id)
                page = await self.entries.query_stored(
                    Query(WAITING_RANGE, order_by=(("sortKey", False),)),
                    partition_key=queue_id,
                    max_items=WAITING_PAGE,
                )
                if page.items:
                    candidates.append((settings, [waiting_from_stored(e) for e in page.items]))
            item = next_for_agent(seat, candidates, self.clock.now())
            if item is None:
                break
            settings = next(s for s, items in candidates if item in items)
            result = await self.claim(item, agent_id, settings)
            if result == "offered":
                assigned.append((item.conversation_id, agent_id))
            elif result == "busy":
                break
        return assigned
