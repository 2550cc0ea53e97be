"""Escalation intake: a bot hands a conversation to human agents (`POST /api/escalations`).

The webhook answers fast: it finds the patient, classifies the escalation onto a queue, stores the
conversation (status `waiting`, its summary and reason with it, the bot's transcript as its first
messages), audits the creation, puts a routing request on the `routing` queue and answers
`202 {conversationId, status, queueId}`. Assignment to an agent happens in the queue-triggered
routing function.

**The bot's conversation.** The bot's id is never a document id: its key is a hash scoped to the
calling bot (shared/conversations/documents.py `bot_key`: bearer, the bot principal; signed, the
webhook secret's principal), the first human conversation's id is derived from the key
(`c-` + 32 hex), and the document is created only if absent, so it *is* the idempotency record: a
second delivery of the same bot conversation finds it and answers `200` with the same body,
changing nothing. If it is still `waiting` without `routedAt` (the process may have died between
the store write and the send), the routing request is sent again under the same message id
(duplicate detection drops it if the first got through). When that conversation is **closed**,
an escalation opens the next one (`previousConversationId` links it): the pointer
`bot-conversation:<key>` in `lookups` moves to it with an ETag check (two deliveries racing open
one), and the bot's messages and leaving go to the conversation the pointer names.

**`webhook-id`** (signed deliveries). A `lookups` document `webhook:<sha256(id)>` (ttl 1 h, more
than the ±5 min signature window lets a replay live) is created only if absent before any write,
holding the answer this delivery will give (the conversation id derived, the queue classified
before anything is written; corrected on the rare path that opens a next conversation). When it
exists and its conversation exists, the delivery is a replay: `200` with that conversation's id,
status and queue, and nothing else happens. When its conversation does not exist, the first
delivery is still running or died mid-way: this one goes on through the bot-conversation path,
which cannot create a second conversation, so a sender's retry after a crash still gets through.

Failures. The audit records (a provisional patient's creation, the conversation's) are written
before the conversation, in one batch (the audit container's partition is the patient's): an
access is never unaudited, and a failure after them leaves a record of the attempt. The
conversation, its first messages and its `conversation.waiting` event are one transaction
(shared/kernel/outbox.py): it stands with its events or is not there. (A transcript longer than
one batch holds has its later messages written first, created-or-replaced, so a retry rewrites
them; readers never see them before the conversation exists.) If anything fails, the
`webhook-id` claim is released and the answer is 503: the bot's retry goes the whole way again. If
the routing request could not be sent after the conversation was stored, the conversation stands
("saved, retry"): the retry finds it and sends the request again, and the sweep timer routes a
waiting conversation that was never routed. A provisional patient record created on the way is
kept: the retry reuses it (its id is derived from the bot conversation's key).

Store operations for a new escalation (`python -m bench.store_ops`): the webhook-id claim, the
patient match (1-2), the audit batch, the board entry, the conversation batch: at most 6.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.audit.api import Action, record_accesses
from shared.auth.principal import Principal
from shared.callbacks.api import CallbackPolicy, CallbackUrlRefused
from shared.conversations.api import (
    LIVE,
    BotConversationPointer,
    ConversationDocument,
    MessageDocument,
    Status,
    conversation_id_for,
    conversation_key,
    conversations,
    move,
    new_conversation,
    pointer_id,
    transcript_messages,
)
from shared.escalations.model import Escalation
from shared.kernel.catalog import CONVERSATIONS, LOOKUPS, ROUTING_QUEUE
from shared.kernel.clock import Clock
from shared.kernel.documents import BatchFailed, BatchOperation, DocumentStore
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed, Unavailable, ValidationFailed
from shared.kernel.idempotency import Idempotency, Scope, answer_of
from shared.kernel.messages import MessageBus
from shared.kernel.observability import mark_phi
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.patients.api import PatientMatcher
from shared.routing.api import RoutingDirectory, place, route_request

log = logging.getLogger("psc.escalations")

# A webhook-id is remembered for an hour: more than the ±5 min signature window lets a replay live.
WEBHOOK = Scope("webhook", "webhook-delivery", timedelta(hours=1))
# Transcript messages in the conversation's own batch (with the conversation and its events, under
# the 100 operations a batch holds); later ones go first in batches of their own.
FIRST_MESSAGES = 90
MESSAGE_BATCH = 100


def webhook_record_id(webhook_id: str) -> str:
    return WEBHOOK.record_id(webhook_id)


@dataclass(frozen=True)
class IntakeResult:
    answer: dict[str, Any]
    created: bool

    @property
    def status(self) -> int:
        return 202 if self.created else 200


@dataclass(frozen=True)
class Target:
    """The human conversation an escalation means: its id, which of the bot conversation's it is,
    and the one before it."""

    key: str
    conversation_id: str
    generation: int = 1
    previous: str | None = None


class Saved(Exception):
    """The conversation is stored, but its routing request could not be sent (503: retry)."""


class EscalationIntake:
    def __init__(
        self,
        store: DocumentStore,
        bus: MessageBus,
        clock: Clock,
        callbacks: CallbackPolicy | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        # Without a policy no callback URL is allowed (as PSC_BOT_CALLBACK_HOSTS unset).
        self._callbacks = callbacks or CallbackPolicy(allowed=())
        self._webhooks = Idempotency(store, clock, WEBHOOK)
        self._pointers = Stored(store, LOOKUPS, BotConversationPointer)

    async def escalate(
        self,
        escalation: Escalation,
        *,
        actor: Principal,
        webhook_id: str | None,
        correlation_id: str,
    ) -> IntakeResult:
        mark_phi(*escalation.phi())
        escalation = self._checked_callback(escalation)
        key = conversation_key(actor, escalation.bot_conversation_id)
        first = Target(key, conversation_id_for(key))
        placement = await place(self._store, escalation.attributes)
        claimed = None
        if webhook_id is not None:
            answer = {
                "conversationId": first.conversation_id,
                "status": str(Status.WAITING),
                "queueId": placement.queue_id,
            }
            claimed = await self._webhooks.claim(webhook_id, answer=answer)
            if claimed is None:
                replayed = await self._replay(webhook_id)
                if replayed is not None:
                    return replayed
                # Its conversation is not there: the first delivery is running or died mid-way;
                # this one goes on through the bot-conversation path (one conversation at most).
        try:
            result = await self._open(escalation, first, placement, actor, correlation_id)
        except BaseException as error:
            # Not answered: the retry with the same webhook-id goes the whole way again (and finds
            # the conversation if it was saved).
            if claimed is not None:
                assert webhook_id is not None
                await self._forget_webhook(webhook_id, claimed.etag)
            if isinstance(error, Saved):
                raise Unavailable("The escalation is saved but could not be queued; retry.") from None
            raise
        if claimed is not None and result.answer["conversationId"] != first.conversation_id:
            assert webhook_id is not None
            await self._webhooks.settle(webhook_id, answer=result.answer)  # a next conversation
        return result

    def _checked_callback(self, escalation: Escalation) -> Escalation:
        """The escalation with its callback URL normalised, or a 400 naming the rule it breaks
        (never the URL), before anything is written."""
        if escalation.callback_url is None:
            return escalation
        try:
            url = self._callbacks.check_url(escalation.callback_url)
        except CallbackUrlRefused as refused:
            raise ValidationFailed([{"field": escalation.callback_field, "message": str(refused)}]) from None
        return replace(escalation, callback_url=url)

    # webhook-id ------------------------------------------------------------------------------

    async def _replay(self, webhook_id: str) -> IntakeResult | None:
        """The answer to a delivery seen before, or None when its conversation is not there."""
        answer = answer_of(await self._webhooks.read(webhook_id))
        if answer is None:
            return None
        existing = await conversations.read_or_none(self._store, str(answer.get("conversationId")))
        if existing is None:
            return None
        log.info("webhook replay answered", extra={"conversation_id": existing.id})
        return await self._repeated(existing, resend=False)

    async def _forget_webhook(self, webhook_id: str, etag: str) -> None:
        try:
            await self._webhooks.release(webhook_id, etag=etag)
        except Exception as error:
            # Left behind it only makes a retry take the bot-conversation path: still safe.
            log.warning("webhook claim not released", extra={"error_type": type(error).__name__})

    # the escalation ---------------------------------------------------------------------------

    async def _open(
        self, escalation: Escalation, target: Target, placement: Any, actor: Principal, correlation_id: str
    ) -> IntakeResult:
        """Create the conversation `target` names, or answer the one that exists (opening the next
        one after a closed one)."""
        now = self._clock.now()
        # No read first: the create below is the check (a repeat meets its Conflict), which keeps
        # the webhook within its store operations (python -m bench.store_ops).
        match = await PatientMatcher(self._store).match(escalation.patient, target.key, now)
        doc = await self._new_document(escalation, target, placement, match, now)
        messages = transcript_messages(doc.id, match.patient_id, escalation.transcript)
        # Audited before it is written (no unaudited access; a failure after it leaves a record
        # of the attempt), the patient's creation with it: one batch in the patient's partition.
        accesses: list[tuple[Action, str]] = [("create", f"conversations/{doc.id}")]
        if match.created:
            accesses.insert(0, ("create", f"patients/{match.patient_id}"))
        await record_accesses(
            self._store,
            self._clock,
            actor=actor,
            patient_id=match.patient_id,
            accesses=accesses,
            correlation_id=correlation_id,
        )
        # On its queue's board list before it exists (shared/conversations/store.py): a delivery
        # that dies here leaves an entry the board skips, never a live conversation off the board.
        await conversations.list_live(self._store, doc, placement.queue_id)
        await self._write_later_messages(doc.id, messages[FIRST_MESSAGES:])
        try:
            stored = await conversations.create(self._store, doc, messages[:FIRST_MESSAGES])
        except Conflict:
            # The same bot conversation again (a repeat, or a concurrent delivery).
            return await self._existing(escalation, target, placement, actor, correlation_id)
        await self._send_route_request(doc.id)
        log.info(
            "escalation accepted",
            extra={"conversation_id": doc.id, "patient_id": match.patient_id, "queue": placement.queue_id},
        )
        return IntakeResult(
            {"conversationId": doc.id, "status": stored.status, "queueId": placement.queue_id},
            created=True,
        )

    async def _new_document(
        self, escalation: Escalation, target: Target, placement: Any, match: Any, now: datetime
    ) -> ConversationDocument:
        attrs = escalation.attributes
        settings = await RoutingDirectory(self._store).queue(placement.queue_id)
        doc = new_conversation(
            conversation_id=target.conversation_id,
            bot_conversation_id=escalation.bot_conversation_id,
            patient_id=match.patient_id,
            patient_match=match.method,
            now=now,
            reason=escalation.reason,
            summary=escalation.summary,
            urgency=str(attrs.urgency),
            specialty=attrs.specialty,
            language=attrs.language,
            context=dict(attrs.context),
            channel=escalation.channel,
            locale=escalation.locale,
            body_format=escalation.body_format,
            bot_key=target.key,
            generation=target.generation,
            previous_conversation_id=target.previous,
            callback_url=escalation.callback_url,
        )
        doc = doc.changed(last_seq=len(escalation.transcript))
        if escalation.symptoms:
            doc.symptoms = list(escalation.symptoms)
        return move(
            doc,
            "queue",
            now,
            queueId=placement.queue_id,
            skills=dict(placement.skills),
            priority=placement.priority,
            queuedAt=stamp(now),
            serviceLevelSeconds=settings.service_level_seconds,
        )

    async def _write_later_messages(self, conversation_id: str, messages: list[MessageDocument]) -> None:
        container = self._store.container(CONVERSATIONS)
        for start in range(0, len(messages), MESSAGE_BATCH):
            chunk = messages[start : start + MESSAGE_BATCH]
            try:
                await container.batch(conversation_id, [BatchOperation.upsert(m.body()) for m in chunk])
            except BatchFailed as failed:
                raise failed.error from None

    async def _existing(
        self, escalation: Escalation, target: Target, placement: Any, actor: Principal, correlation_id: str
    ) -> IntakeResult:
        existing = await conversations.read_or_none(self._store, target.conversation_id)
        if existing is None:
            raise Unavailable("The escalation is being processed; retry.")
        if existing.status != Status.CLOSED:
            await self._relist(existing, placement.queue_id)
            return await self._repeated(existing)
        await conversations.unlist_live(self._store, placement.queue_id, existing.id)
        following = await retry(
            lambda: self._following(existing), give_up=lambda: Unavailable("The escalation is busy; retry.")
        )
        if isinstance(following, ConversationDocument):
            return await self._repeated(following)
        return await self._open(escalation, following, placement, actor, correlation_id)

    async def _following(self, closed: ConversationDocument) -> ConversationDocument | Target:
        """After a closed conversation of this bot conversation: the current one if it is live,
        else the next one to open (the pointer moved to it first, ETag-checked)."""
        key = str(closed.bot_key)
        pointer = await self._pointers.read_or_none(pointer_id(key))
        if pointer is not None and pointer.conversation_id != closed.id:
            current = await conversations.read_or_none(self._store, pointer.conversation_id)
            if current is None:  # the pointer moved and its conversation was not written yet
                return Target(
                    key, pointer.conversation_id, pointer.generation, pointer.previous_conversation_id
                )
            if current.status != Status.CLOSED:
                return current
            closed = current
        generation = closed.generation + 1
        fresh = BotConversationPointer(
            id=pointer_id(key),
            conversation_id=conversation_id_for(key, generation),
            generation=generation,
            previous_conversation_id=closed.id,
        )
        try:
            if pointer is None:
                await self._pointers.create(fresh)
            else:
                await self._pointers.replace(fresh.over(pointer))
        except (Conflict, PreconditionFailed, NotFound):
            raise Again() from None  # another delivery moved it: look again
        log.info("next conversation of a bot conversation", extra={"conversation_id": fresh.conversation_id})
        return Target(key, fresh.conversation_id, generation, closed.id)

    async def _send_route_request(self, conversation_id: str) -> None:
        try:
            await self._bus.send(ROUTING_QUEUE, route_request(conversation_id))
        except Exception as error:
            log.warning(
                "routing request not sent",
                extra={"conversation_id": conversation_id, "error_type": type(error).__name__},
            )
            raise Saved() from None

    async def _relist(self, existing: ConversationDocument, queue_id: str) -> None:
        """A repeat wrote its own entry on `queue_id`'s list: put back the first delivery's (its
        place on the board), or take it away when the conversation is not live there."""
        if existing.queue_id == queue_id and existing.status in LIVE:
            await conversations.list_live(self._store, existing, queue_id)
        else:
            await conversations.unlist_live(self._store, queue_id, str(existing.id))

    async def _repeated(self, existing: ConversationDocument, *, resend: bool = True) -> IntakeResult:
        """The same bot conversation again: the first answer, and a routing request resent if the
        conversation may never have reached the router (not for a replayed webhook-id: that
        delivery was answered, so its routing request was sent)."""
        conversation_id = str(existing.id)
        if resend and existing.status == Status.WAITING and not existing.routed_at:
            await self._send_route_request(conversation_id)
        log.info("escalation repeated", extra={"conversation_id": conversation_id})
        return IntakeResult(
            {"conversationId": conversation_id, "status": existing.status, "queueId": existing.queue_id},
            created=False,
        )
