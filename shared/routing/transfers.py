"""Moving a conversation between queues and agents: an agent's or a supervisor's transfer, and a
supervisor's assign. Routing operations (they validate the target queue and agent against routing
and reserve an agent); the conversation's own move goes through `shared.conversations.api`.

A supervisor's assign and transfer to an agent skip the presence and capacity check, as the
reference product allows; everything a supervisor does is audited.
"""

from __future__ import annotations

from shared.audit.api import record_access
from shared.auth.principal import Principal
from shared.conversations.api import (
    DEFAULT_QUEUE,
    ConversationDocument,
    Status,
    conversations,
    is_supervisor,
    move,
)
from shared.kernel.catalog import ROUTING_QUEUE
from shared.kernel.errors import Conflict, NotFound, UnprocessableContent, ValidationFailed
from shared.kernel.times import stamp
from shared.routing.assignment import Assignment
from shared.routing.engine import Waiting, can_take
from shared.routing.seats import routing_message, seat_of, waiting_of


class Transfers:
    def __init__(self, assignment: Assignment) -> None:
        self._assignment = assignment
        self._store = assignment.store
        self._clock = assignment.clock
        self._directory = assignment.directory

    async def _read(self, conversation_id: str) -> ConversationDocument:
        try:
            return await conversations.read(self._store, conversation_id)
        except NotFound:
            raise NotFound("no such conversation") from None

    async def transfer(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        queue_id: str | None,
        agent_id: str | None,
        correlation_id: str | None,
    ) -> ConversationDocument:
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
            if current.agent_id != principal.subject:
                raise NotFound("no such conversation")
            if current.status != Status.ACTIVE:
                raise Conflict(f"the conversation is {current.status}")
        elif current.status not in (Status.WAITING, Status.OFFERED, Status.ACTIVE):
            raise Conflict(f"the conversation is {current.status}")
        target_queue = queue_id or current.queue_id or DEFAULT_QUEUE
        if (
            queue_id is not None
            and queue_id not in await self._directory.queue_index()
            and queue_id != DEFAULT_QUEUE
        ):
            raise UnprocessableContent([{"field": "queueId", "message": "is not a known queue"}])
        settings = await self._directory.queue(target_queue)
        target_agent = None
        if agent_id is not None:
            try:
                target_agent = await self._directory.agent_doc(agent_id)
            except NotFound:
                raise UnprocessableContent(
                    [{"field": "agentId", "message": "is not a known agent"}]
                ) from None
            probe = Waiting(
                conversation_id,
                target_queue,
                int(current.priority),
                now,
                current.language or "en",
                {},
                frozenset(),
                settings.capacity_units,
            )
            if not supervisor and not can_take(seat_of(target_agent), probe):
                raise Conflict("that agent cannot take the conversation now")
        previous_agent = current.agent_id
        previous_queue = current.queue_id or DEFAULT_QUEUE
        if target_queue != previous_queue:
            # On the target queue's board list before the move, off the old one after.
            await conversations.list_live(self._store, current, target_queue)

        def change(doc: ConversationDocument) -> ConversationDocument:
            if doc.etag != current.etag:
                raise Conflict("the conversation changed meanwhile; read it again")
            return move(
                doc,
                "requeue",
                now,
                queueId=target_queue,
                queuedAt=stamp(now),
                agentId=None,
                offerExpiresAt=None,
                transfers=int(doc.transfers) + 1,
                serviceLevelSeconds=settings.service_level_seconds,
                by=principal.subject,
                cause="transfer",
                detail={"toAgentId": agent_id} if agent_id else None,
            )

        doc = await conversations.change(self._store, conversation_id, change)
        if target_queue != previous_queue:
            await conversations.unlist_live(self._store, previous_queue, conversation_id)
        await self._assignment.release(previous_agent, conversation_id)
        await self._assignment.drop_entry(conversation_id, current.queue_id or DEFAULT_QUEUE)
        await self._assignment.requeue_entry(doc)
        if target_agent is not None:
            entry = await self._assignment.entries.read(f"wait:{conversation_id}", target_queue)
            await self._assignment.claim(
                waiting_of(entry), target_agent.id, settings, force=supervisor, by=principal.subject
            )
            doc = await self._read(conversation_id)
        else:
            await self._assignment.bus.send(
                ROUTING_QUEUE,
                routing_message(
                    "conversation", f"route:{doc.id}:transfer:{doc.transfers}", conversationId=doc.id
                ),
            )
        await self._audit(principal, "transfer", doc, correlation_id)
        return doc

    async def assign(
        self, principal: Principal, conversation_id: str, agent_id: str, correlation_id: str | None
    ) -> ConversationDocument:
        """A supervisor gives a waiting (or re-gives an offered) conversation to an agent, overriding
        presence and capacity as the reference product allows."""
        try:  # the body's reference first: an unknown agent is 422 whatever the conversation's state
            await self._directory.agent_doc(agent_id)
        except NotFound:
            raise UnprocessableContent([{"field": "agentId", "message": "is not a known agent"}]) from None
        current = await self._read(conversation_id)
        if current.status not in (Status.WAITING, Status.OFFERED):
            raise Conflict(f"the conversation is {current.status}")
        if current.status == Status.OFFERED and current.agent_id == agent_id:
            return current
        return await self.transfer(
            principal, conversation_id, queue_id=None, agent_id=agent_id, correlation_id=correlation_id
        )

    async def _audit(
        self, principal: Principal, action: str, doc: ConversationDocument, correlation_id: str | None
    ) -> None:
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action=action,  # type: ignore[arg-type]
            resource=f"conversations/{doc.id}",
            patient_id=doc.patient_id,
            correlation_id=correlation_id,
        )
