"""The `realtime` consumer of the `events` topic: pushes each event's frames to the hub
(shared/live/frames.py says which frames go to which group).

Idempotent by a watermark: per aggregate a `live-watermark` document in the aggregate's own
partition (`conversations` by conversation, `agents` by agent) holds the last `(version, n)` whose
frames were all pushed. The subscription has sessions (one aggregate's events in order, one at a
time), so an event at or below the watermark has been pushed: a redelivery pushes nothing. The
watermark is written (If-Match) after the pushes, never before: a push that fails leaves it where
it was and the message comes again, so no frame is lost. A handler that dies after some pushes and
before the watermark write pushes that one event's frames again on redelivery; they carry the same
`event` id, which clients drop (frames are at least once; everything else exactly once in effect).

`position` frames are the current place of each patient waiting in the queue that moved: derived
from the queue as it is when pushed, so sending one again says nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from shared.conversations.api import MessageDocument, message_id
from shared.kernel.catalog import AGENTS, CONVERSATIONS
from shared.kernel.documents import DocumentStore
from shared.kernel.outbox import EVENT_TTL
from shared.kernel.realtime import Realtime
from shared.kernel.stored import Document, Stored
from shared.live.frames import Plan, conversation_plan, position_frame, presence_plan
from shared.routing.api import queue_order

log = logging.getLogger("psc.live")

WATERMARK_ID = "live-watermark"
# As long as an event can still be delivered (the topic keeps a message 14 days) and a day more.
WATERMARK_TTL = int(EVENT_TTL.total_seconds()) + 24 * 3600


class Watermark(Document):
    DROP_NONE: ClassVar[bool] = True

    type: Literal["live-watermark"] = "live-watermark"
    version: int
    n: int
    ttl: int = WATERMARK_TTL
    conversation_id: str | None = None
    agent_id: str | None = None


def position_of(envelope: Mapping[str, Any]) -> tuple[int, int]:
    """`(version, n)` of an envelope, from its id `<aggregate id>:<version>.<n>`."""
    version, _, n = str(envelope["id"]).rpartition(":")[2].partition(".")
    return int(version), int(n)


class LiveFeed:
    def __init__(self, store: DocumentStore, realtime: Realtime) -> None:
        self._store = store
        self._realtime = realtime
        self._messages = Stored(store, CONVERSATIONS, MessageDocument)

    async def handle(self, envelope: Mapping[str, Any]) -> int:
        """Push the event's frames unless they were pushed; the number of frames sent (0 for a
        redelivery or a subject that shows nothing)."""
        kind = str(envelope.get("type", ""))
        if kind.startswith("conversation."):
            container, field = CONVERSATIONS, "conversationId"
        elif kind == "agent.presence":
            container, field = AGENTS, "agentId"
        else:
            return 0  # a subject this consumer does not show: acknowledged
        aggregate_id = str(envelope["aggregateId"])
        marks = Stored(self._store, container, Watermark)
        mark = await marks.read_or_none(WATERMARK_ID, aggregate_id)
        here = position_of(envelope)
        if mark is not None and here <= (mark.version, mark.n):
            log.info("live frames already pushed", extra={"message_id": envelope["id"]})
            return 0
        plan = await self._plan(kind, envelope)
        sent = await self._run(plan, envelope)
        if mark is None:
            await marks.create(
                Watermark.model_validate(
                    {"id": WATERMARK_ID, "version": here[0], "n": here[1], field: aggregate_id}
                )
            )
        else:
            await marks.replace(mark.model_copy(update={"version": here[0], "n": here[1]}))
        return sent

    async def _plan(self, kind: str, envelope: Mapping[str, Any]) -> Plan:
        if kind == "agent.presence":
            return presence_plan(envelope)
        message = None
        if kind == "conversation.message":
            seq = int((envelope.get("data") or {})["seq"])
            doc = await self._messages.read_or_none(message_id(seq), str(envelope["aggregateId"]))
            message = doc.view() if doc is not None else None
        return conversation_plan(envelope, message)

    async def _run(self, plan: Plan, envelope: Mapping[str, Any]) -> int:
        rt = self._realtime
        for change in plan.before:
            await rt.add_user_to_group(change.group, change.user_id)
        for push in plan.pushes:
            await rt.send_to_group(push.group, push.data)
        for change in plan.after:
            await rt.remove_user_from_group(change.group, change.user_id)
        sent = len(plan.pushes)
        if plan.queue_id:
            waiting = await queue_order(self._store, plan.queue_id)
            for place, conversation_id in enumerate(waiting, start=1):
                push = position_frame(conversation_id, plan.queue_id, place, str(envelope["at"]))
                await rt.send_to_group(push.group, push.data)
            sent += len(waiting)
        log.info("live frames pushed", extra={"message_id": envelope["id"], "count": sent})
        return sent
