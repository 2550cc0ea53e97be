"""What agents, supervisors, the bot and the patient do to a conversation once it is routed: read,
accept, decline, close (wrap-up, then closed), abandon, the patient leaving, force close; and what
routing's timed messages do to it (offer expiry, end of wrap-up). Messages are
shared/conversations/messages.py.

Every change is an ETag-checked replace of the conversation document through
`shared.conversations.model.move` (illegal moves are 409s). Conversations never import routing: a
change that frees an agent's capacity or takes the conversation out of its queue tells routing
through the `routing` queue (shared/conversations/notices.py). The one routing setting a change
needs, the queue's wrap-up time, comes from a `WrapupPolicy` the caller passes in (routing's
directory is one). Reads and changes of a conversation (patient data) are audited.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Protocol

from shared.audit.api import record_access
from shared.auth.principal import Principal, Role
from shared.conversations import notices
from shared.conversations import store as conversations
from shared.conversations.model import ConversationDocument, Status, move
from shared.kernel.catalog import ROUTING_QUEUE
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, NotFound
from shared.kernel.messages import MessageBus
from shared.kernel.retry import retry
from shared.kernel.times import parse_stamp, stamp

log = logging.getLogger(__name__)


class WrapupPolicy(Protocol):
    async def wrapup_seconds(self, queue_id: str) -> int:
        """How long an agent keeps a closed conversation's capacity (the queue's wrap-up block)."""
        ...


def is_supervisor(principal: Principal) -> bool:
    return principal.has(Role.SUPERVISOR)


class Lifecycle:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock, wrapup: WrapupPolicy) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._wrapup = wrapup

    # Reading ----------------------------------------------------------------------------------------

    async def _read(self, conversation_id: str) -> ConversationDocument:
        try:
            return await conversations.read(self._store, conversation_id)
        except NotFound:
            raise NotFound("no such conversation") from None

    def _visible(self, doc: ConversationDocument, principal: Principal) -> bool:
        if is_supervisor(principal):
            return True
        if principal.has(Role.AGENT) and doc.agent_id == principal.subject:
            return True
        if principal.has(Role.BOT):
            return True
        return principal.acts_as_patient_only and doc.patient_id == principal.patient_id

    async def audit(
        self, principal: Principal, action: Any, doc: ConversationDocument, correlation_id: str | None
    ) -> None:
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action=action,
            resource=f"conversations/{doc.id}",
            patient_id=doc.patient_id,
            correlation_id=correlation_id,
        )

    async def get(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> ConversationDocument:
        """An agent sees the conversations offered or assigned to them; a supervisor sees all. Any
        other conversation answers 404, as if it did not exist."""
        doc = await self._read(conversation_id)
        if not (is_supervisor(principal) or doc.agent_id == principal.subject):
            raise NotFound("no such conversation")
        await self.audit(principal, "read", doc, correlation_id)
        return doc

    # Changing ---------------------------------------------------------------------------------------

    def _own(self, doc: ConversationDocument, principal: Principal, *statuses: Status) -> None:
        if doc.agent_id != principal.subject:
            raise NotFound("no such conversation")
        if statuses and doc.status not in statuses:
            raise Conflict(f"the conversation is {doc.status}")

    async def accept(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> ConversationDocument:
        now = self._clock.now()

        def change(doc: ConversationDocument) -> ConversationDocument:
            self._own(doc, principal)
            if doc.status == Status.ACTIVE:
                return doc  # a retried accept
            return move(doc, "accept", now, by=principal.subject, offerExpiresAt=None)

        doc = await conversations.change(self._store, conversation_id, change)
        await self.audit(principal, "update", doc, correlation_id)
        return doc

    async def decline(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> ConversationDocument:
        """An explicit decline: back to its place in the queue; the agent's third decline of
        this conversation excludes them from it."""
        doc = await self._return_offer(conversation_id, principal.subject, None, expired=False)
        if doc is None:
            raise Conflict("the conversation is not offered to you")
        await self.audit(principal, "update", doc, correlation_id)
        return doc

    async def expire_offer(self, conversation_id: str, offer_seq: Any) -> bool:
        """An offer not accepted in time goes back to its place in the queue. It is not a decline
        (only explicit declines count towards the exclusion): the agent is counted in
        `offerTimeouts` and ranked after every other eligible agent for this conversation
        (`shared.routing.engine.best_agent`). Redelivery: no change."""
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None:
            return False
        if doc.status != Status.OFFERED or doc.agent_id is None:
            return False
        if offer_seq is not None and doc.offer_seq != offer_seq:
            return False
        expires = doc.offer_expires_at
        if expires and parse_stamp(expires) > self._clock.now():
            return False
        returned = await self._return_offer(conversation_id, doc.agent_id, doc.offer_seq, expired=True)
        return returned is not None

    async def _return_offer(
        self, conversation_id: str, agent_id: str, offer_seq: Any, *, expired: bool
    ) -> ConversationDocument | None:
        """Offered → waiting, for a decline or an expiry; None when an expiry found the offer
        gone (accepted, declined or re-offered meanwhile)."""
        now = self._clock.now()
        tally = "offerTimeouts" if expired else "declines"

        def change(doc: ConversationDocument) -> ConversationDocument:
            if doc.agent_id != agent_id:
                raise NotFound("no such conversation")
            if doc.status != Status.OFFERED or (offer_seq is not None and doc.offer_seq != offer_seq):
                raise Conflict(f"the conversation is {doc.status}")
            counts = dict((doc.offer_timeouts if expired else doc.declines) or {})
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
            doc = await conversations.change(self._store, conversation_id, change)
        except (NotFound, Conflict):
            if expired:
                return None
            raise
        await self._bus.send(ROUTING_QUEUE, notices.returned(doc, agent_id, expired=expired))
        log.info(
            "offer returned",
            extra={
                "conversation_id": conversation_id,
                "agent_id": agent_id,
                "outcome": "expire" if expired else "decline",
            },
        )
        return doc

    async def close(
        self, principal: Principal, conversation_id: str, disposition: str | None, correlation_id: str | None
    ) -> ConversationDocument:
        """Active → wrap-up; the agent keeps the capacity for the queue's wrap-up block, then the
        conversation closes and the capacity returns."""
        now = self._clock.now()
        current = await self._read(conversation_id)
        self._own(current, principal, Status.ACTIVE)
        seconds = await self._wrapup.wrapup_seconds(current.queue_id or conversations.DEFAULT_QUEUE)
        ends = now + timedelta(seconds=seconds)

        def change(doc: ConversationDocument) -> ConversationDocument:
            self._own(doc, principal, Status.ACTIVE)
            return move(
                doc, "wrapup", now, disposition=disposition, wrapupEndsAt=stamp(ends), by=principal.subject
            )

        doc = await conversations.change(self._store, conversation_id, change)
        await self.audit(principal, "close", doc, correlation_id)
        return await self._wrapup_started(doc, seconds, ends)

    async def _wrapup_started(
        self, doc: ConversationDocument, seconds: int, ends: Any
    ) -> ConversationDocument:
        if seconds == 0:
            await self.end_wrapup(doc.id, None)
            return await self._read(doc.id)
        await self._bus.schedule(ROUTING_QUEUE, notices.wrapup_end(doc.id), ends)
        return doc

    async def patient_left(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> ConversationDocument:
        """The bot says the patient left: a conversation still waiting for an agent (open,
        waiting, offered) is closed as abandoned, as `abandon` does; an active one goes to wrap-up
        with `endReason` `patient-left` (the agent keeps the wrap-up block, then it closes). One
        in wrap-up or closed has ended already: answered as it is (a repeated notice)."""

        async def step() -> ConversationDocument:
            # A Conflict means it moved on meanwhile (accepted, closed): the policy looks again.
            current = await self._read(conversation_id)
            if current.status in (Status.OPEN, Status.WAITING, Status.OFFERED):
                return await self.abandon(principal, conversation_id, correlation_id)
            if current.status == Status.ACTIVE:
                return await self._left_active(principal, current, correlation_id)
            return current

        return await retry(
            step, on=(Conflict,), attempts=3, give_up=lambda: Conflict("The conversation is changing; retry.")
        )

    async def _left_active(
        self, principal: Principal, current: ConversationDocument, correlation_id: str | None
    ) -> ConversationDocument:
        now = self._clock.now()
        seconds = await self._wrapup.wrapup_seconds(current.queue_id or conversations.DEFAULT_QUEUE)
        ends = now + timedelta(seconds=seconds)

        def change(doc: ConversationDocument) -> ConversationDocument:
            return move(
                doc,
                "wrapup",
                now,
                endReason="patient-left",
                wrapupEndsAt=stamp(ends),
                by=principal.subject,
                cause="patient-left",
            )

        doc = await conversations.change(self._store, current.id, change)
        await self.audit(principal, "update", doc, correlation_id)
        return await self._wrapup_started(doc, seconds, ends)

    async def end_wrapup(self, conversation_id: str, _seq: Any) -> bool:
        now = self._clock.now()
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None:
            return False
        ends = doc.wrapup_ends_at
        if doc.status != Status.WRAPUP or (ends and parse_stamp(ends) > now):
            if doc.status == Status.CLOSED:  # finish an interrupted close
                await self._ended(doc, doc)
            return False

        def change(current: ConversationDocument) -> ConversationDocument:
            if current.status != Status.WRAPUP:
                raise Conflict("not in wrap-up")
            return move(current, "close", now)

        try:
            closed = await conversations.change(self._store, conversation_id, change)
        except Conflict:
            return False
        await self._ended(doc, closed)
        return True

    async def abandon(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> ConversationDocument:
        """The patient left (the bot or the portal says so) while waiting or being offered."""
        now = self._clock.now()
        current = await self._read(conversation_id)
        if not self._visible(current, principal):
            raise NotFound("no such conversation")

        def change(doc: ConversationDocument) -> ConversationDocument:
            return move(doc, "abandon", now, endReason="abandoned", by=principal.subject)

        doc = await conversations.change(self._store, conversation_id, change)
        await self._ended(current, doc)
        await self.audit(principal, "update", doc, correlation_id)
        return doc

    async def force_close(
        self, principal: Principal, conversation_id: str, reason: str | None, correlation_id: str | None
    ) -> ConversationDocument:
        now = self._clock.now()
        current = await self._read(conversation_id)

        def change(doc: ConversationDocument) -> ConversationDocument:
            return move(doc, "force-close", now, endReason=reason or "forced", by=principal.subject)

        doc = await conversations.change(self._store, conversation_id, change)
        await self._ended(current, doc)
        await self.audit(principal, "close", doc, correlation_id)
        return doc

    async def _ended(self, before: ConversationDocument, after: ConversationDocument) -> None:
        """Off the board (after the change: a crash leaves an entry readers skip), and routing told
        to drop its waiting entry and release the agent's capacity."""
        queue_id = before.queue_id or conversations.DEFAULT_QUEUE
        await conversations.unlist_live(self._store, queue_id, str(after.id))
        await self._bus.send(ROUTING_QUEUE, notices.ended(after, queue_id=queue_id, agent_id=before.agent_id))
