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
from datetime import datetime
from typing import Any, Literal

from shared.audit.trail import record_access
from shared.auth.principal import Principal
from shared.conversations.model import Status, move, new_conversation
from shared.escalations.model import Escalation
from shared.kernel import lists
from shared.kernel.clock import Clock
from shared.kernel.documents import Container, DocumentStore, Item
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed, Unavailable
from shared.kernel.messages import MessageBus
from shared.kernel.messaging import json_message
from shared.kernel.observability import mark_phi
from shared.kernel.times import stamp
from shared.patients.matching import PatientMatcher

log = logging.getLogger("psc.escalations")

CONVERSATIONS = "conversations"
LOOKUPS = "lookups"
ROUTING_QUEUE = "routing"
WEBHOOK_TTL_SECONDS = 3600
WEBHOOK_PREFIX = "webhook:"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def conversation_id_for(bot_conversation_id: str) -> str:
    return "c-" + _sha(bot_conversation_id)[:32]


def webhook_record_id(webhook_id: str) -> str:
    return WEBHOOK_PREFIX + _sha(webhook_id)


def routing_request(conversation_id: str) -> Any:
    return json_message(
        {"kind": "conversation", "conversationId": conversation_id},
        message_id=f"route:{conversation_id}:queued",
        subject="route-conversation",
    )


@dataclass(frozen=True)
class IntakeResult:
    answer: dict[str, Any]
    created: bool

    @property
    def status(self) -> int:
        return 202 if self.created else 200


Claim = Literal["new", "pending", "answered"]


class EscalationIntake:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._conversations: Container = store.container(CONVERSATIONS)
        self._lookups: Container = store.container(LOOKUPS)

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
        claim: Claim | None = None
        if webhook_id is not None:
            claim, answer = await self._claim_webhook(webhook_id, now)
            if answer is not None:
                log.info("webhook replay answered", extra={"conversation_id": answer.get("conversationId")})
                return IntakeResult(answer, created=False)
        try:
            result = await self._intake(escalation, now, actor, correlation_id)
        except BaseException:
            if claim == "new":
                assert webhook_id is not None
                await self._forget_webhook(webhook_id)
            raise
        if webhook_id is not None:
            await self._remember_answer(webhook_id, result.answer, now)
        return result

    # webhook-id ------------------------------------------------------------------------------

    async def _claim_webhook(self, webhook_id: str, now: datetime) -> tuple[Claim, dict[str, Any] | None]:
        record_id = webhook_record_id(webhook_id)
        try:
            await self._lookups.create(
                {
                    "id": record_id,
                    "type": "webhook-delivery",
                    "receivedAt": stamp(now),
                    "ttl": WEBHOOK_TTL_SECONDS,
                }
            )
            return "new", None
        except Conflict:
            pass
        try:
            seen = await self._lookups.read(record_id, record_id)
        except NotFound:
            return "pending", None  # expired in between: the bot-conversation-id path decides
        answer = seen.get("answer")
        return ("answered", dict(answer)) if isinstance(answer, dict) else ("pending", None)

    async def _remember_answer(self, webhook_id: str, answer: dict[str, Any], now: datetime) -> None:
        """Best effort: without it a replay goes through the (idempotent) bot-conversation path."""
        record_id = webhook_record_id(webhook_id)
        try:
            await self._lookups.upsert(
                {
                    "id": record_id,
                    "type": "webhook-delivery",
                    "receivedAt": stamp(now),
                    "answer": answer,
                    "ttl": WEBHOOK_TTL_SECONDS,
                }
            )
        except Exception as error:
            log.warning("webhook answer not recorded", extra={"error_type": type(error).__name__})

    async def _forget_webhook(self, webhook_id: str) -> None:
        record_id = webhook_record_id(webhook_id)
        try:
            await self._lookups.delete(record_id, record_id)
        except NotFound:
            pass
        except Exception as error:
            # Left behind it only makes a retry take the bot-conversation-id path: still safe.
            log.warning("webhook claim not released", extra={"error_type": type(error).__name__})

    # the escalation ---------------------------------------------------------------------------

    async def _existing(self, conversation_id: str) -> Item | None:
        try:
            return await self._conversations.read(conversation_id, conversation_id)
        except NotFound:
            return None

    async def _intake(
        self, escalation: Escalation, now: datetime, actor: Principal, correlation_id: str
    ) -> IntakeResult:
        from shared.routing.directory import place

        conversation_id = conversation_id_for(escalation.bot_conversation_id)
        existing = await self._existing(conversation_id)
        if existing is not None:
            return await self._repeated(existing)

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
            doc["symptoms"] = list(escalation.symptoms)
        doc = move(
            doc,
            "queue",
            now,
            queueId=placement.queue_id,
            skills=dict(placement.skills),
            priority=placement.priority,
            queuedAt=stamp(now),
        )
        # On its queue's board list before it exists (shared/kernel/lists.py): a delivery that
        # dies here leaves an entry the board skips, never a live conversation off the board.
        await lists.add(self._store, lists.live_entry(doc, placement.queue_id))
        try:
            stored = await self._conversations.create(doc)
        except Conflict:
            # The same bot conversation, delivered concurrently: the other delivery created it.
            existing = await self._existing(conversation_id)
            if existing is None:
                raise Unavailable("The escalation is being processed; retry.") from None
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
            await self._bus.send(ROUTING_QUEUE, routing_request(conversation_id))
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
            {"conversationId": conversation_id, "status": stored["status"], "queueId": placement.queue_id},
            created=True,
        )

    async def _repeated(self, existing: Item) -> IntakeResult:
        """The same bot conversation again: the first answer, and a routing request resent if the
        conversation may never have reached the router."""
        conversation_id = str(existing["id"])
        if existing.get("status") == Status.WAITING and not existing.get("routedAt"):
            try:
                await self._bus.send(ROUTING_QUEUE, routing_request(conversation_id))
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
                "status": existing.get("status"),
                "queueId": existing.get("queueId"),
            },
            created=False,
        )

    async def _roll_back(self, stored: Item, actor: Principal, patient_id: str, correlation_id: str) -> None:
        conversation_id = str(stored["id"])
        try:
            await self._conversations.delete(conversation_id, conversation_id, etag=stored["_etag"])
        except (NotFound, PreconditionFailed):
            return  # already gone, or routing picked it up (then it is not half-written)
        except Exception as error:
            log.error(
                "escalation rollback failed",
                extra={"conversation_id": conversation_id, "error_type": type(error).__name__},
            )
            return
        try:
            await lists.remove(
                self._store, lists.live_conversations_list(str(stored.get("queueId"))), conversation_id
            )
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
