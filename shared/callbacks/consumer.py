"""The `callbacks` consumer of the `events` topic: a conversation's events become signed POSTs to
the bot that escalated it (PRODUCT.md "Bot callbacks"), in order, at least once.

Driven as shared/callbacks/schedule.py's docstring says. The subscription has sessions on, so one
worker at a time handles a conversation, in event order:

1. An event (`conversation.waiting`, `.accepted`, `.message`, `.transferred`, `.closed`) of a
   conversation with a callback URL: unless it is at or behind the last event applied (a
   redelivery, or older: nothing changes), its callback (shared/callbacks/mapping.py; a message's
   text read from its document) is queued behind the others in the conversation's `CallbackQueue`
   and the event is marked applied, in one If-Match write of the state document
   (shared/callbacks/documents.py).
2. Then the due heads are delivered with the sender, the outcome saved after each (If-Match). A
   crash between a delivery and its save delivers again: at least once, bots dedupe on
   `webhook-id`.
3. When the head waits for a retry, or the conversation waits in its queue (its place is looked
   at every 15 s), a wake-up message (`callbacks.wake`, session = the conversation) is scheduled
   on the topic for that time; only this subscription's filter lets it in. It runs steps 2-3 and
   the look. Its message id names the conversation and the time, and the state remembers the
   wake-up scheduled, so a run schedules one only when none is due sooner.
4. A dead letter (given up after the hour, or refused at once) is written beside the state
   (`callback-dead:<webhook-id>`, reason, status, attempts: `python -m ops callbacks`) and logged
   by id and reason before the state that drops it is saved; later callbacks go on.

**Position, cheaply.** On `conversation.waiting` and at each look while it waits, the place is
one count of the waiting entries ahead of it in its queue's partition of `routing`
(shared/routing/standing.py: `SELECT VALUE COUNT(1)` over a `sortKey` range, answered from the
index): no cross-partition query, one query per look whatever the queue's length, and looks only
for conversations that named a callback, only while they wait.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shared.callbacks.documents import STATE_ID, CallbackDeadLetter, CallbackState
from shared.callbacks.mapping import (
    ACCEPTED,
    CLOSED,
    EVENT_TYPES,
    POSITION_EVERY,
    TRANSFERRED,
    WAKE,
    Envelope,
    Need,
    callback_type_of,
    message_data,
    need_of,
    position_data,
    position_decision,
    position_webhook_id,
    webhook_id,
)
from shared.callbacks.schedule import DeadLetter, PendingCallback, due, on_new_event, on_result, wake_at
from shared.conversations.api import (
    ConversationDocument,
    MessageDocument,
    Status,
    conversations,
    message_document_id,
)
from shared.kernel.callbacks import CallbackSender
from shared.kernel.catalog import CONVERSATIONS, EVENTS_TOPIC
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict
from shared.kernel.messages import MessageBus, OutgoingMessage
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.routing.api import agent_display_name, queue_standing

log = logging.getLogger("psc.callbacks")

# One run delivers for at most this long (then wakes itself at once), well inside a 60 s lock.
RUN_BUDGET_SECONDS = 20.0
# Statuses in which the place in the queue is still worth a look (an offer may come back).
LOOKED_AT = frozenset({Status.WAITING, Status.OFFERED})


class CallbackConsumer:
    def __init__(
        self,
        store: DocumentStore,
        bus: MessageBus,
        clock: Clock,
        sender: Callable[[], CallbackSender],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._sender = sender
        self._monotonic = monotonic
        self._states = Stored(store, CONVERSATIONS, CallbackState)
        self._dead = Stored(store, CONVERSATIONS, CallbackDeadLetter)
        self._messages = Stored(store, CONVERSATIONS, MessageDocument)

    async def handle(self, body: Mapping[str, Any]) -> None:
        """One message of the subscription (an event envelope or a wake-up). Subjects it does not
        handle are acknowledged (a filter may let everything in for a moment at deployment)."""
        kind = body.get("type")
        if kind == WAKE:
            await self._wake(str(body["conversationId"]))
            return
        if kind not in EVENT_TYPES:
            return  # not ours (a filter lets everything in for a moment at deployment): acknowledged
        envelope = Envelope.parse(body)
        if need_of(envelope) is None:
            # An internal note, the patient's or the bot's own message, a type not ours: nothing
            # to queue and nothing to write (the watermark only guards what is queued).
            log.debug(
                "event makes no callback", extra={"message_id": envelope.id, "event_type": envelope.type}
            )
            return
        conversation = await conversations.read_or_none(self._store, envelope.aggregate_id)
        if conversation is None or not conversation.callback_url:
            return
        await retry(lambda: self._apply(envelope, conversation))
        await self._drive(conversation)

    # 1. events --------------------------------------------------------------------------------

    async def _apply(self, envelope: Envelope, conversation: ConversationDocument) -> None:
        state = await self._state(conversation.id)
        if envelope.order <= (state.applied_version, state.applied_n):
            return  # redelivered, or older than what was applied: nothing changes
        now = self._clock.now()
        queue = state.queue
        dead: list[DeadLetter] = []
        changes: dict[str, Any] = {"applied_version": envelope.version, "applied_n": envelope.n}
        need = need_of(envelope)
        callback: PendingCallback | None = None
        if need == "position":
            changes["look_at"] = now + POSITION_EVERY
            state, callback = await self._position(
                state.changed(**changes), conversation, now, webhook_id(envelope.id)
            )
            changes = {}
        elif need is not None:
            data = await self._data_for(need, envelope, conversation)
            if data is not None:
                callback = self._callback(webhook_id(envelope.id), need, envelope.at, conversation, data)
        if envelope.type in (ACCEPTED, CLOSED):
            changes["look_at"] = None  # no longer waiting: no more looks
        if envelope.type == TRANSFERRED:
            changes["position"] = None  # a place in another queue is news, even the same number
        if callback is not None:
            queue, dead = on_new_event(queue, callback, now)
        await self._record(conversation.id, dead)
        await self._save(state.changed(queue=queue, **changes))

    async def _data_for(
        self, need: Need, envelope: Envelope, conversation: ConversationDocument
    ) -> dict[str, Any] | None:
        if need == "agent":
            agent_id = envelope.data.get("agentId")
            name = await agent_display_name(self._store, str(agent_id)) if agent_id else None
            return {"agent": {"name": name}}
        if need == "message":
            seq = int(envelope.data["seq"])
            message = await self._messages.read_or_none(message_document_id(seq), conversation.id)
            return message_data(message.view()) if message is not None else None
        if need == "transferred":
            return {}
        if need == "closed":
            return {"endReason": envelope.data.get("endReason")}
        return None

    @staticmethod
    def _callback(
        callback_id: str, need: Need, at: datetime, conversation: ConversationDocument, data: dict[str, Any]
    ) -> PendingCallback:
        ids = {"conversationId": conversation.id, "botConversationId": conversation.bot_conversation_id}
        return PendingCallback(
            id=callback_id, type=callback_type_of(need), timestamp=at, data={**ids, **data}
        )

    async def _position(
        self, state: CallbackState, conversation: ConversationDocument, now: datetime, callback_id: str
    ) -> tuple[CallbackState, PendingCallback | None]:
        """Look at the conversation's place: a `queue.position` callback when it changed and the
        bot was last told 15 s ago or more (else the next look tells it)."""
        standing = await queue_standing(self._store, self._clock, conversation)
        if standing is None:
            return state, None
        told = (state.position, bool(state.out_of_hours)) if state.position is not None else None
        current = (standing.position, standing.out_of_hours)
        if position_decision(told, state.position_at, current, now) != "tell":
            return state, None
        callback = self._callback(
            callback_id,
            "position",
            now,
            conversation,
            position_data(standing.position, standing.out_of_hours),
        )
        return state.changed(
            position=standing.position, out_of_hours=standing.out_of_hours, position_at=now
        ), callback

    # 3. wake-ups ------------------------------------------------------------------------------

    async def _wake(self, conversation_id: str) -> None:
        conversation = await conversations.read_or_none(self._store, conversation_id)
        if conversation is None or not conversation.callback_url:
            return
        await retry(lambda: self._look(conversation))
        await self._drive(conversation)

    async def _look(self, conversation: ConversationDocument) -> None:
        state = await self._states.read_or_none(STATE_ID, conversation.id)
        now = self._clock.now()
        if state is None or state.look_at is None or now < state.look_at:
            return
        if conversation.status not in LOOKED_AT:
            await self._save(state.changed(look_at=None))
            return
        looked, callback = await self._position(
            state.changed(look_at=now + POSITION_EVERY),
            conversation,
            now,
            position_webhook_id(conversation.id, state.looks + 1),
        )
        queue, dead = state.queue, list[DeadLetter]()
        if callback is not None:
            looked = looked.changed(looks=state.looks + 1)
            queue, dead = on_new_event(queue, callback, now)
        await self._record(conversation.id, dead)
        await self._save(looked.changed(queue=queue))

    # 2. delivery ------------------------------------------------------------------------------

    async def _drive(self, conversation: ConversationDocument) -> None:
        """Deliver the due heads in order, saving each outcome; then make sure a wake-up comes
        when the next retry or look is due."""
        started = self._monotonic()
        url = str(conversation.callback_url)
        outcome = "next"
        while outcome == "next":
            outcome = await retry(lambda: self._deliver_head(conversation.id, url, started))
        if outcome == "gone":
            return
        await retry(lambda: self._schedule_wake(conversation.id))

    async def _deliver_head(self, conversation_id: str, url: str, started: float) -> str:
        """Deliver the due head and save its outcome: "next" when another may be due, "done" when
        none is due (or the run's budget is spent), "gone" when there is no state. A state changed
        meanwhile (a redelivered message racing this one) raises PreconditionFailed: the policy
        runs this again from a fresh read; at worst the head goes again, which bots dedupe."""
        state = await self._states.read_or_none(STATE_ID, conversation_id)
        if state is None:
            return "gone"
        now = self._clock.now()
        head = due(state.queue, now)
        if head is None or self._monotonic() - started > RUN_BUDGET_SECONDS:
            return "done"
        result = await self._sender().deliver(
            url, head.type, head.data, message_id=head.id, timestamp=head.timestamp
        )
        step = on_result(state.queue, head.id, result, self._clock.now())
        await self._record(conversation_id, step.dead)
        await self._states.replace(state.changed(queue=step.queue))
        return "next"

    async def _schedule_wake(self, conversation_id: str) -> None:
        state = await self._states.read_or_none(STATE_ID, conversation_id)
        if state is None:
            return
        now = self._clock.now()
        wanted = [t for t in (wake_at(state.queue, now), state.look_at) if t is not None]
        if not wanted:
            return
        at = max(min(wanted), now)
        scheduled = state.wake_at
        if scheduled is not None and now < scheduled <= at:
            return  # one comes sooner (or then) and looks again
        await self._bus.schedule(EVENTS_TOPIC, wake_message(conversation_id, at), at)
        await self._save(state.changed(wake_at=at))

    # the state --------------------------------------------------------------------------------

    async def _state(self, conversation_id: str) -> CallbackState:
        state = await self._states.read_or_none(STATE_ID, conversation_id)
        return state if state is not None else CallbackState(id=STATE_ID, conversation_id=conversation_id)

    async def _save(self, state: CallbackState) -> CallbackState:
        """If-Match on the ETag read (a create for a new state): a lost race is retried by the
        caller from a fresh read."""
        if state.store_etag is None:
            try:
                return await self._states.create(state)
            except Conflict:
                raise Again() from None
        return await self._states.replace(state)

    async def _record(self, conversation_id: str, dead: list[DeadLetter]) -> None:
        """Dead letters are written (idempotently) before the state that drops them."""
        for letter in dead:
            await self._dead.upsert(CallbackDeadLetter.of(conversation_id, letter))
            log.warning(
                "bot callback dead-lettered",
                extra={
                    "conversation_id": conversation_id,
                    "message_id": letter.id,
                    "reason": letter.reason,
                    "status": letter.status,
                    "attempts": letter.attempts,
                },
            )


def wake_message(conversation_id: str, at: datetime) -> OutgoingMessage:
    """The wake-up for `at`: into the conversation's session, its id naming the conversation and
    the time (a second schedule for the same time is a duplicate the topic drops)."""
    millis = int(at.timestamp() * 1000)
    body = {"type": WAKE, "conversationId": conversation_id, "at": stamp(at)}
    return OutgoingMessage(
        body=json.dumps(body, separators=(",", ":")).encode(),
        message_id=f"callbacks-wake:{conversation_id}:{millis}",
        subject=WAKE,
        session_id=conversation_id,
    )


async def dead_letters(store: DocumentStore, *, max_items: int = 100) -> list[CallbackDeadLetter]:
    """Recent callback dead letters of every conversation (ops only: a cross-partition filter, no
    ORDER BY, first page; never on a request path)."""
    from shared.kernel.documents import Query, where

    page = await Stored(store, CONVERSATIONS, CallbackDeadLetter).query_cross_partition(
        Query((where("type", "=", "callback-dead-letter"),)), max_items=max_items
    )
    return sorted(page.items, key=lambda d: d.dead_lettered_at)


__all__ = ["CallbackConsumer", "dead_letters", "wake_message"]
