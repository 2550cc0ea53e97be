"""What agents, supervisors, the bot and the patient do to a conversation once it is routed: read,
accept, decline, message, transfer, close (wrap-up, then closed), abandon, force close, assign.

Every change is an ETag-checked replace of the conversation document through
`shared.conversations.model.move` (illegal moves are 409s); capacity goes back to the agent through
`Assignment.release`. Reads and changes of a conversation (patient data) are audited.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any

from shared.audit.trail import record_access
from shared.auth.principal import Principal, Role
from shared.conversations.model import HOLDS_CAPACITY, Status, move
from shared.kernel import lists
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Item
from shared.kernel.errors import Conflict, NotFound, UnprocessableContent, ValidationFailed
from shared.kernel.messages import MessageBus
from shared.kernel.retry import retry
from shared.kernel.times import stamp
from shared.routing.assignment import (
    CONVERSATIONS,
    IN_FLIGHT_GRACE,
    ROUTING_QUEUE,
    Assignment,
    parse_time,
    routing_message,
    seat_of,
    waiting_entry,
    waiting_of,
)
from shared.routing.directory import DEFAULT_QUEUE
from shared.routing.engine import Waiting, can_take
from shared.routing.model import QueueSettings

log = logging.getLogger(__name__)

MAX_MESSAGES = 500


def is_supervisor(principal: Principal) -> bool:
    return principal.has(Role.SUPERVISOR)


async def conversation_patient(store: DocumentStore, conversation_id: str) -> str | None:
    """The patient a conversation is about, or None when there is no such conversation (one point
    read: other capabilities check a reference with it, e.g. a booking made in a conversation)."""
    try:
        doc = await store.container(CONVERSATIONS).read(conversation_id, conversation_id)
    except NotFound:
        return None
    return str(doc.get("patientId")) if doc.get("patientId") else ""


class Lifecycle:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._conversations = store.container(CONVERSATIONS)
        self.assignment = Assignment(store, bus, clock)

    # Reading ----------------------------------------------------------------------------------------

    async def _read(self, conversation_id: str) -> Item:
        try:
            return await self._conversations.read(conversation_id, conversation_id)
        except NotFound:
            raise NotFound("no such conversation") from None

    def _visible(self, doc: Item, principal: Principal) -> bool:
        if is_supervisor(principal):
            return True
        if principal.has(Role.AGENT) and doc.get("agentId") == principal.subject:
            return True
        if principal.has(Role.BOT):
            return True
        return principal.acts_as_patient_only and doc.get("patientId") == principal.patient_id

    async def _audit(self, principal: Principal, action: Any, doc: Item, correlation_id: str | None) -> None:
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action=action,
            resource=f"conversations/{doc['id']}",
            patient_id=doc.get("patientId"),
            correlation_id=correlation_id,
        )

    async def get(self, principal: Principal, conversation_id: str, correlation_id: str | None) -> Item:
        """An agent sees the conversations offered or assigned to them; a supervisor sees all. Any
        other conversation answers 404, as if it did not exist."""
        doc = await self._read(conversation_id)
        if not (is_supervisor(principal) or doc.get("agentId") == principal.subject):
            raise NotFound("no such conversation")
        await self._audit(principal, "read", doc, correlation_id)
        return doc

    async def mine(self, principal: Principal) -> list[Item]:
        """My offered, active and wrap-up conversations: point reads from my agent document."""
        try:
            agent = await self.assignment.directory.agent_doc(principal.subject)
        except NotFound:
            raise NotFound("you are not registered as an agent") from None
        out = []
        for conversation_id in agent.get("conversations", {}):
            try:
                doc = await self._conversations.read(conversation_id, conversation_id)
            except NotFound:
                continue
            if doc.get("agentId") == principal.subject and doc["status"] in HOLDS_CAPACITY:
                out.append(doc)
        return sorted(out, key=lambda d: d.get("offeredAt") or "")

    # Changing ---------------------------------------------------------------------------------------

    async def _change(self, conversation_id: str, change: Any) -> Item:
        """Read-modify-write under the conversation's ETag; `change(doc)` returns the new doc."""

        async def step() -> Item:
            doc = await self._read(conversation_id)
            fresh = change(doc)
            if fresh is doc:
                return doc
            return await self._conversations.replace(fresh, etag=doc["_etag"])

        result: Item = await retry(step)
        return result

    def _own(self, doc: Item, principal: Principal, *statuses: Status) -> None:
        if doc.get("agentId") != principal.subject:
            raise NotFound("no such conversation")
        if statuses and doc["status"] not in statuses:
            raise Conflict(f"the conversation is {doc['status']}")

    async def accept(self, principal: Principal, conversation_id: str, correlation_id: str | None) -> Item:
        now = self._clock.now()

        def change(doc: Item) -> Item:
            self._own(doc, principal)
            if doc["status"] == Status.ACTIVE:
                return doc  # a retried accept
            return move(doc, "accept", now, by=principal.subject, offerExpiresAt=None)

        doc = await self._change(conversation_id, change)
        await self._audit(principal, "update", doc, correlation_id)
        return doc

    async def decline(self, principal: Principal, conversation_id: str, correlation_id: str | None) -> Item:
        """An explicit decline: back to its place in the queue; the agent's third decline of
        this conversation excludes them from it."""
        doc = await self._return_offer(conversation_id, principal.subject, None, expired=False)
        if doc is None:
            raise Conflict("the conversation is not offered to you")
        await self._audit(principal, "update", doc, correlation_id)
        return doc

    async def expire_offer(self, conversation_id: str, offer_seq: Any) -> bool:
        """An offer not accepted in time goes back to its place in the queue. It is not a decline
        (only explicit declines count towards the exclusion): the agent is counted in
        `offerTimeouts` and ranked after every other eligible agent for this conversation
        (`shared.routing.engine.best_agent`). Redelivery: no change."""
        try:
            doc = await self._conversations.read(conversation_id, conversation_id)
        except NotFound:
            return False
        if doc["status"] != Status.OFFERED or (offer_seq is not None and doc.get("offerSeq") != offer_seq):
            return False
        expires = parse_time(doc.get("offerExpiresAt"))
        if expires is not None and expires > self._clock.now():
            return False
        return (
            await self._return_offer(conversation_id, doc["agentId"], doc.get("offerSeq"), expired=True)
            is not None
        )

    async def _return_offer(
        self, conversation_id: str, agent_id: str, offer_seq: Any, *, expired: bool
    ) -> Item | None:
        """Offered → waiting, for a decline or an expiry; None when an expiry found the offer
        gone (accepted, declined or re-offered meanwhile)."""
        now = self._clock.now()
        tally = "offerTimeouts" if expired else "declines"

        def change(doc: Item) -> Item:
            if doc.get("agentId") != agent_id:
                raise NotFound("no such conversation")
            if doc["status"] != Status.OFFERED or (
                offer_seq is not None and doc.get("offerSeq") != offer_seq
            ):
                raise Conflict(f"the conversation is {doc['status']}")
            counts = dict(doc.get(tally, {}))
            counts[agent_id] = counts.get(agent_id, 0) + 1
            return move(
                doc,
                "expire" if expired else "decline",
                now,
                agentId=None,
                offerExpiresAt=None,
                by=agent_id,
                cause="timeout" if expired else "declined",
                **{tally: counts},
            )

        try:
            doc = await self._change(conversation_id, change)
        except (NotFound, Conflict):
            if expired:
                return None
            raise
        await self._requeue_entry(doc)
        why = "expire" if expired else "decline"
        # After an expiry the conversation is routed first and the agent asked for work a little
        # later: were the agent's own pull first, it would be offered the same conversation again
        # before routing could rank them last for it.
        await self.assignment.release(
            agent_id, conversation_id, notify_after=IN_FLIGHT_GRACE if expired else timedelta(0)
        )
        await self._route(doc, f"{why}:{doc.get('offerSeq', 0)}")
        log.info(
            "offer returned", extra={"conversation_id": conversation_id, "agent_id": agent_id, "outcome": why}
        )
        return doc

    async def _requeue_entry(self, doc: Item) -> None:
        """Back into the waiting order at its original place (it keeps its waiting time)."""
        settings = await self.assignment.directory.queue(doc["queueId"])
        entry = waiting_entry(doc, doc.get("queuedAt") or stamp(self._clock.now()), settings.capacity_units)
        await self._store.container("routing").upsert(entry)

    async def _route(self, doc: Item, why: str) -> None:
        await self._bus.send(
            ROUTING_QUEUE,
            routing_message("conversation", f"route:{doc['id']}:{why}", conversationId=doc["id"]),
        )

    async def send_message(
        self, principal: Principal, conversation_id: str, text: str, correlation_id: str | None
    ) -> Item:
        now = self._clock.now()

        def change(doc: Item) -> Item:
            self._own(doc, principal, Status.ACTIVE)
            messages = list(doc.get("messages", []))
            if len(messages) >= MAX_MESSAGES:
                raise Conflict("the conversation has too many messages")
            messages.append(
                {"from": "agent", "agentId": principal.subject, "text": text, "timestamp": stamp(now)}
            )
            fresh = {**doc, "messages": messages, "updatedAt": stamp(now)}
            fresh.setdefault("firstAgentResponseAt", None)
            if not fresh["firstAgentResponseAt"]:
                fresh["firstAgentResponseAt"] = stamp(now)
            return fresh

        doc = await self._change(conversation_id, change)
        await self._audit(principal, "update", doc, correlation_id)
        return doc

    async def transfer(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        queue_id: str | None,
        agent_id: str | None,
        correlation_id: str | None,
    ) -> Item:
        """To a queue (back into its waiting order) or to an agent (offered to them directly; the
        agent must be able to take it unless a supervisor overrides presence and capacity)."""
        if (queue_id is None) == (agent_id is None):
            raise ValidationFailed(
                [{"field": "queueId", "message": "give exactly one of queueId and agentId"}]
            )
        supervisor = is_supervisor(principal)
        now = self._clock.now()
        current = await self._read(conversation_id)
        if not supervisor:
            self._own(current, principal, Status.ACTIVE)
        elif current["status"] not in (Status.WAITING, Status.OFFERED, Status.ACTIVE):
            raise Conflict(f"the conversation is {current['status']}")
        target_queue = queue_id or current["queueId"] or DEFAULT_QUEUE
        if (
            queue_id is not None
            and queue_id not in await self.assignment.directory.queue_index()
            and queue_id != DEFAULT_QUEUE
        ):
            raise UnprocessableContent([{"field": "queueId", "message": "is not a known queue"}])
        settings = await self.assignment.directory.queue(target_queue)
        target_agent = None
        if agent_id is not None:
            try:
                target_agent = await self.assignment.directory.agent_doc(agent_id)
            except NotFound:
                raise UnprocessableContent(
                    [{"field": "agentId", "message": "is not a known agent"}]
                ) from None
            probe = Waiting(
                conversation_id,
                target_queue,
                int(current.get("priority", 1)),
                now,
                current.get("language") or "en",
                {},
                frozenset(),
                settings.capacity_units,
            )
            if not supervisor and not can_take(seat_of(target_agent), probe):
                raise Conflict("that agent cannot take the conversation now")
        previous_agent = current.get("agentId")
        previous_queue = current.get("queueId") or DEFAULT_QUEUE
        if target_queue != previous_queue:
            # On the target queue's board list before the move, off the old one after (lists.py).
            await lists.add(self._store, lists.live_entry(current, target_queue))

        def change(doc: Item) -> Item:
            if doc["_etag"] != current["_etag"]:
                raise Conflict("the conversation changed meanwhile; read it again")
            return move(
                doc,
                "requeue",
                now,
                queueId=target_queue,
                queuedAt=stamp(now),
                agentId=None,
                offerExpiresAt=None,
                transfers=int(doc.get("transfers", 0)) + 1,
                by=principal.subject,
                cause="transfer",
            )

        doc = await self._change(conversation_id, change)
        if target_queue != previous_queue:
            await lists.remove(self._store, lists.live_conversations_list(previous_queue), conversation_id)
        await self.assignment.release(previous_agent, conversation_id)
        with contextlib.suppress(NotFound):
            await self._store.container("routing").delete(
                f"wait:{conversation_id}", current["queueId"] or DEFAULT_QUEUE
            )
        await self._requeue_entry(doc)
        if target_agent is not None:
            entry = await self._store.container("routing").read(f"wait:{conversation_id}", target_queue)
            await self.assignment.claim(
                waiting_of(entry), target_agent["id"], settings, force=supervisor, by=principal.subject
            )
            doc = await self._read(conversation_id)
        else:
            await self._route(doc, f"transfer:{doc['transfers']}")
        await self._audit(principal, "transfer", doc, correlation_id)
        return doc

    async def close(
        self, principal: Principal, conversation_id: str, disposition: str | None, correlation_id: str | None
    ) -> Item:
        """Active → wrap-up; the agent keeps the capacity for the queue's wrap-up block, then the
        conversation closes and the capacity returns."""
        now = self._clock.now()
        current = await self._read(conversation_id)
        self._own(current, principal, Status.ACTIVE)
        settings: QueueSettings = await self.assignment.directory.queue(current["queueId"] or DEFAULT_QUEUE)
        ends = now + timedelta(seconds=settings.wrapup_seconds)

        def change(doc: Item) -> Item:
            self._own(doc, principal, Status.ACTIVE)
            return move(
                doc, "wrapup", now, disposition=disposition, wrapupEndsAt=stamp(ends), by=principal.subject
            )

        doc = await self._change(conversation_id, change)
        await self._audit(principal, "close", doc, correlation_id)
        if settings.wrapup_seconds == 0:
            await self.end_wrapup(conversation_id, None)
            return await self._read(conversation_id)
        await self._bus.schedule(
            ROUTING_QUEUE,
            routing_message("wrapup-end", f"wrapup-end:{conversation_id}", conversationId=conversation_id),
            ends,
        )
        return doc

    async def end_wrapup(self, conversation_id: str, _seq: Any) -> bool:
        now = self._clock.now()
        try:
            doc = await self._conversations.read(conversation_id, conversation_id)
        except NotFound:
            return False
        ends = parse_time(doc.get("wrapupEndsAt"))
        if doc["status"] != Status.WRAPUP or (ends is not None and ends > now):
            if doc["status"] == Status.CLOSED:  # finish an interrupted close
                await self._unlist(doc)
                if doc.get("agentId"):
                    await self.assignment.release(doc["agentId"], conversation_id)
            return False

        def change(current: Item) -> Item:
            if current["status"] != Status.WRAPUP:
                raise Conflict("not in wrap-up")
            return move(current, "close", now)

        try:
            doc = await self._change(conversation_id, change)
        except Conflict:
            return False
        await self._unlist(doc)
        await self.assignment.release(doc.get("agentId"), conversation_id)
        return True

    async def _unlist(self, doc: Item) -> None:
        """Off the board once closed (after the change: a crash leaves an entry readers skip)."""
        queue_id = doc.get("queueId") or DEFAULT_QUEUE
        await lists.remove(self._store, lists.live_conversations_list(queue_id), str(doc["id"]))

    async def abandon(self, principal: Principal, conversation_id: str, correlation_id: str | None) -> Item:
        """The patient left (the bot or the portal says so) while waiting or being offered."""
        now = self._clock.now()
        current = await self._read(conversation_id)
        if not self._visible(current, principal):
            raise NotFound("no such conversation")

        def change(doc: Item) -> Item:
            return move(doc, "abandon", now, endReason="abandoned", by=principal.subject)

        doc = await self._change(conversation_id, change)
        await self._finish(current, doc)
        await self._audit(principal, "update", doc, correlation_id)
        return doc

    async def force_close(
        self, principal: Principal, conversation_id: str, reason: str | None, correlation_id: str | None
    ) -> Item:
        now = self._clock.now()
        current = await self._read(conversation_id)

        def change(doc: Item) -> Item:
            return move(doc, "force-close", now, endReason=reason or "forced", by=principal.subject)

        doc = await self._change(conversation_id, change)
        await self._finish(current, doc)
        await self._audit(principal, "close", doc, correlation_id)
        return doc

    async def _finish(self, before: Item, after: Item) -> None:
        with contextlib.suppress(NotFound):
            await self._store.container("routing").delete(
                f"wait:{after['id']}", before.get("queueId") or DEFAULT_QUEUE
            )
        await self._unlist(before)
        await self.assignment.release(before.get("agentId"), after["id"])

    async def assign(
        self, principal: Principal, conversation_id: str, agent_id: str, correlation_id: str | None
    ) -> Item:
        """A supervisor gives a waiting (or re-gives an offered) conversation to an agent, overriding
        presence and capacity as the reference product allows."""
        try:  # the body's reference first: an unknown agent is 422 whatever the conversation's state
            await self.assignment.directory.agent_doc(agent_id)
        except NotFound:
            raise UnprocessableContent([{"field": "agentId", "message": "is not a known agent"}]) from None
        current = await self._read(conversation_id)
        if current["status"] not in (Status.WAITING, Status.OFFERED):
            raise Conflict(f"the conversation is {current['status']}")
        if current["status"] == Status.OFFERED and current.get("agentId") == agent_id:
            return current
        return await self.transfer(
            principal, conversation_id, queue_id=None, agent_id=agent_id, correlation_id=correlation_id
        )

    # Board ---------------------------------------------------------------------------------------

    async def board(
        self, statuses: list[str] | None, max_items: int, continuation: str | None
    ) -> dict[str, Any]:
        """The supervisor's live board (shared/routing/board.py)."""
        from shared.routing.board import Board

        return await Board(self._store, self._clock, self.assignment.directory).page(
            statuses, max_items, continuation
        )
