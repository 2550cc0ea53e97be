"""Escalation intake: a bot hands a conversation to human agents (`POST /api/escalations`).

The webhook answers fast: it finds the patient, classifies the escalation onto a queue, stores the
conversation (status `waiting`, transcript and summary with it), audits the creation, puts a
routing request on the `routing` queue and answers `202 {conversationId, status, queueId}`.
Assignment to an agent happens in the queue-triggered routing function.

Idempotency, two layers:

* **Bot conversation id.** The conversation id is derived from it (`c-` + 32 hex of its SHA-256)
  and the document is created only if absent, so the conversation document *is* the idempotency
  record: a second delivery of the same bot conversation finds it and answers `200` with the same
  body, changing nothing. If that conversation is still `waiting` without `routedAt` (the process
  may have died between the store write and the send), the routing request is sent again under
  the same message id: Service Bus duplicate detection drops it if the first one got through.
* **`webhook-id`** (signed deliveries). A `lookups` document `webhook:<sha256(id)>` (ttl 1 h, more
  than the ±5 min signature window lets a replay live) is created only if absent before any work.
  When it already holds an answer, the delivery is a replay: `200` with that answer and nothing
  else happens. When it exists without an answer, the first delivery is still running or died
  mid-way: this one goes on through the bot-conversation-id path, which cannot create a second
  conversation, so a sender's retry after a crash still gets the escalation through.

Failures: nothing half-written stays behind. If the audit record or the routing request cannot
be written (bus down: `Unavailable` or any exception), the conversation document is deleted (with
its ETag: if routing already touched it, it stays), and so is the `webhook-id` document this
delivery created, and the answer is 503: the bot's retry starts clean. A provisional patient
record created on the way is kept: it holds no conversation, and the retry reuses it (its id is
derived from the bot conversation id).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.audit.api import record_access
from shared.auth.principal import Principal
from shared.conversations.api import LIVE, ConversationDocument, Status, conversations, move, new_conversation
from shared.escalations.model import Escalation
from shared.kernel.catalog import ROUTING_QUEUE
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed, Unavailable
from shared.kernel.idempotency import Idempotency, Scope, answer_of
from shared.kernel.messages import MessageBus
from shared.kernel.observability import mark_phi
from shared.kernel.times import stamp
from shared.patients.api import PatientMatcher
from shared.routing.api import place, route_request

log = logging.getLogger("psc.escalations")

# A webhook-id is remembered for an hour: more than the ±5 min signature window lets a replay live.
WEBHOOK = Scope("webhook", "webhook-delivery", timedelta(hours=1))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def conversation_id_for(bot_conversation_id: str) -> str:
    return "c-" + _sha(bot_conversation_id)[:32]


def webhook_record_id(webhook_id: str) -> str:
    return WEBHOOK.record_id(webhook_id)


@dataclass(frozen=True)
class IntakeResult:
    answer: dict[str, Any]
    created: bool

    @property
    def status(self) -> int:
        return 202 if self.created else 200


class EscalationIntake:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._webhooks = Idempotency(store, clock, WEBHOOK)

    async def escalate(
        self,
        escalation: Escalation,
        *,
        actor: Principal,
        webhook_id: str | None,
        correlation_id: str,
    ) -> IntakeResult:
        mark_phi(*escalation.phi())
        now = self._clock.now()
        claimed = False
        if webhook_id is not None:
            claimed = await self._webhooks.claim(webhook_id) is not None
            if not claimed:
                answer = answer_of(await self._webhooks.read(webhook_id))
                if answer is not None:
                    log.info(
                        "webhook replay answered", extra={"conversation_id": answer.get("conversationId")}
                    )
                    return IntakeResult(answer, created=False)
                # No answer yet: the first delivery is running or died mid-way; this one goes on
                # through the bot-conversation-id path, which cannot create a second conversation.
        try:
            result = await self._intake(escalation, now, actor, correlation_id)
        except BaseException:
            if claimed:
                assert webhook_id is not None
                await self._forget_webhook(webhook_id)
            raise
        if webhook_id is not None:
            await self._remember_answer(webhook_id, result.answer)
        return result

    # webhook-id ------------------------------------------------------------------------------

    async def _remember_answer(self, webhook_id: str, answer: dict[str, Any]) -> None:
        """Best effort: without it a replay goes through the (idempotent) bot-conversation path."""
        try:
            await self._webhooks.settle(webhook_id, answer=answer)
        except Exception as error:
            log.warning("webhook answer not recorded", extra={"error_type": type(error).__name__})

    async def _forget_webhook(self, webhook_id: str) -> None:
        try:
            await self._webhooks.release(webhook_id)
        except Exception as error:
            # Left behind it only makes a retry take the bot-conversation-id path: still safe.
            log.warning("webhook claim not released", extra={"error_type": type(error).__name__})

    # the escalation ---------------------------------------------------------------------------

    async def _intake(
        self, escalation: Escalation, now: datetime, actor: Principal, correlation_id: str
    ) -> IntakeResult:
        conversation_id = conversation_id_for(escalation.bot_conversation_id)
        # No read first: the create below is the check (a repeat meets its Conflict), which keeps
        # the webhook at 8 point operations (python -m bench.store_ops).
        match = await PatientMatcher(self._store).match(
            escalation.patient, escalation.bot_conversation_id, now
        )
        if match.created:
            await record_access(
                self._store,
                self._clock,
                actor=actor,
                action="create",
                resource=f"patients/{match.patient_id}",
                patient_id=match.patient_id,
                correlation_id=correlation_id,
            )
        attrs = escalation.attributes
        placement = await place(self._store, attrs)
        doc = new_conversation(
            conversation_id=conversation_id,
            bot_conversation_id=escalation.bot_conversation_id,
            patient_id=match.patient_id,
            patient_match=match.method,
            now=now,
            reason=escalation.reason,
            summary=escalation.summary,
            transcript=escalation.transcript,
            urgency=str(attrs.urgency),
            specialty=attrs.specialty,
            language=attrs.language,
            context=dict(attrs.context),
            channel=escalation.channel,
            locale=escalation.locale,
            body_format=escalation.body_format,
        )
        if escalation.symptoms:
            doc.symptoms = list(escalation.symptoms)
        doc = move(
            doc,
            "queue",
            now,
            queueId=placement.queue_id,
            skills=dict(placement.skills),
            priority=placement.priority,
            queuedAt=stamp(now),
        )
        # On its queue's board list before it exists (shared/conversations/store.py): a delivery
        # that dies here leaves an entry the board skips, never a live conversation off the board.
        await conversations.list_live(self._store, doc, placement.queue_id)
        try:
            stored = await conversations.create(self._store, doc)
        except Conflict:
            # The same bot conversation again (a repeat, or a concurrent delivery): its answer.
            existing = await conversations.read_or_none(self._store, conversation_id)
            if existing is None:
                raise Unavailable("The escalation is being processed; retry.") from None
            await self._relist(existing, placement.queue_id)
            return await self._repeated(existing)

        try:
            await record_access(
                self._store,
                self._clock,
                actor=actor,
                action="create",
                resource=f"conversations/{conversation_id}",
                patient_id=match.patient_id,
                correlation_id=correlation_id,
            )
            await self._bus.send(ROUTING_QUEUE, route_request(conversation_id))
        except Exception as error:
            await self._roll_back(stored, actor, match.patient_id, correlation_id)
            log.warning(
                "escalation not accepted",
                extra={"conversation_id": conversation_id, "error_type": type(error).__name__},
            )
            raise Unavailable("The escalation could not be queued; retry.") from None

        log.info(
            "escalation accepted",
            extra={
                "conversation_id": conversation_id,
                "patient_id": match.patient_id,
                "queue": placement.queue_id,
            },
        )
        return IntakeResult(
            {"conversationId": conversation_id, "status": stored.status, "queueId": placement.queue_id},
            created=True,
        )

    async def _relist(self, existing: ConversationDocument, queue_id: str) -> None:
        """A repeat wrote its own entry on `queue_id`'s list: put back the first delivery's (its
        place on the board), or take it away when the conversation is not live there."""
        if existing.queue_id == queue_id and existing.status in LIVE:
            await conversations.list_live(self._store, existing, queue_id)
        else:
            await conversations.unlist_live(self._store, queue_id, str(existing.id))

    async def _repeated(self, existing: ConversationDocument) -> IntakeResult:
        """The same bot conversation again: the first answer, and a routing request resent if the
        conversation may never have reached the router."""
        conversation_id = str(existing.id)
        if existing.status == Status.WAITING and not existing.routed_at:
            try:
                await self._bus.send(ROUTING_QUEUE, route_request(conversation_id))
            except Exception as error:
                log.warning(
                    "routing request not resent",
                    extra={"conversation_id": conversation_id, "error_type": type(error).__name__},
                )
                raise Unavailable("The escalation could not be queued; retry.") from None
        log.info("escalation repeated", extra={"conversation_id": conversation_id})
        return IntakeResult(
            {
                "conversationId": conversation_id,
                "status": existing.status,
                "queueId": existing.queue_id,
            },
            created=False,
        )

    async def _roll_back(
        self, stored: ConversationDocument, actor: Principal, patient_id: str, correlation_id: str
    ) -> None:
        conversation_id = str(stored.id)
        try:
            await conversations.delete(self._store, stored)
        except (NotFound, PreconditionFailed):
            return  # already gone, or routing picked it up (then it is not half-written)
        except Exception as error:
            log.error(
                "escalation rollback failed",
                extra={"conversation_id": conversation_id, "error_type": type(error).__name__},
            )
            return
        try:
            await conversations.unlist_live(self._store, str(stored.queue_id), conversation_id)
        except Exception as error:  # the board skips an entry without a conversation: harmless
            log.warning("rollback left a board entry", extra={"error_type": type(error).__name__})
        try:
            # The transcript was stored for a moment: the trail says so, and that it is gone.
            await record_access(
                self._store,
                self._clock,
                actor=actor,
                action="delete",
                resource=f"conversations/{conversation_id}",
                patient_id=patient_id,
                correlation_id=correlation_id,
            )
        except Exception as error:
            log.warning("rollback not audited", extra={"error_type": type(error).__name__})
