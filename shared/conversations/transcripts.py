"""Transcripts: when a conversation closes, its whole record (the conversation with its stamps and
lifecycle history, and every message with its author, visibility and time, internal notes
included) is written once to the transcripts archive as `<conversationId>.json`; only then do its
live message documents start to expire.

The `transcripts` consumer of the `events` topic (functions/transcripts.py, subject
`conversation.closed`) calls `Transcripts.archive`, which is safe to run any number of times:

1. the conversation already has `archivedAt`: nothing to do (a redelivery);
2. the transcript is written with the archive's write-once `put` (blob: `If-None-Match: *`); a
   `Conflict` means an earlier delivery wrote it and died before the end, so it goes on;
3. the export is audited (one record per conversation: its id is derived, a repeat meets it);
4. every message (and sender's key) without a `ttl` gets `ttl` = PSC_MESSAGE_RETENTION_DAYS, in
   transactional batches of at most 100 (and 1.5 MB) in the conversation's partition (Cosmos DB counts a ttl
   from the item's last write, so the retention runs from here, after the archive write);
5. `archivedAt` is recorded on the conversation through the outbox's `Aggregates` without an
   event: no consumer acts on it (the KPIs, the board, callbacks and the hub are done with a
   closed conversation) and an event would only wake every unfiltered subscription.

If the archive cannot be written the handler raises before any `ttl` is set: the message is
redelivered (and dead-lettered after the subscription's max delivery count, for ops to resubmit),
and the live messages stay until a write succeeds.

Reading (`GET /api/conversations/{id}/transcript`) is for supervisors and the agents who handled
the conversation (accepted it at some point); anyone else, and a conversation not archived yet,
answers 404. Reads are audited.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.audit.api import AuditRecord, record_access
from shared.auth.principal import Principal, Role
from shared.conversations import store as conversations
from shared.conversations.documents import MESSAGE_RANGE_END, MessageDocument, MessageKey, message_id
from shared.conversations.model import ConversationDocument, ConversationView, MessageView, Status
from shared.kernel.archive import Archive
from shared.kernel.catalog import AUDIT, CONVERSATIONS
from shared.kernel.clock import Clock
from shared.kernel.documents import (
    MAX_BATCH_OPERATIONS,
    BatchFailed,
    BatchOperation,
    DocumentStore,
    Query,
    where,
)
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.stored import Document, Stored
from shared.kernel.times import InstantText, stamp

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"
ARCHIVER = "system:transcripts"

Outcome = Literal["archived", "already-archived", "no-conversation", "not-closed"]


def transcript_name(conversation_id: str) -> str:
    return f"{conversation_id}.json"


def handled_by(doc: ConversationDocument) -> set[str]:
    """The agents who handled the conversation: whoever accepted it (each accept is in the
    history with who did it; a transfer may bring a second), and the agent it ended with."""
    agents = {str(entry["by"]) for entry in doc.history if entry.get("event") == "accept" and entry.get("by")}
    if doc.accepted_at and doc.agent_id:
        agents.add(doc.agent_id)
    return agents


class TranscriptView(BaseModel):
    """A closed conversation as archived: the conversation (stamps, lifecycle history, reason and
    summary) and every message, internal notes included. Staff only."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, defer_build=True)

    schema_version: int = Field(alias="schemaVersion")
    conversation_id: str = Field(alias="conversationId")
    written_at: InstantText = Field(alias="writtenAt", description="When the transcript was written.")
    conversation: ConversationView
    messages: list[MessageView]


class Transcripts:
    def __init__(self, store: DocumentStore, archive: Archive, clock: Clock, retention_days: int) -> None:
        self._store = store
        self._archive = archive
        self._clock = clock
        self._retention = int(timedelta(days=retention_days).total_seconds())
        self._messages = Stored(store, CONVERSATIONS, MessageDocument)
        self._keys = Stored(store, CONVERSATIONS, MessageKey)

    # Archiving -----------------------------------------------------------------------------------

    async def archive(self, conversation_id: str) -> Outcome:
        """Archive a closed conversation's transcript, then start its messages' retention."""
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None:
            return "no-conversation"
        if doc.archived_at:
            return "already-archived"
        if doc.status != Status.CLOSED:
            log.warning("transcript not archived", extra={"conversation_id": doc.id, "outcome": doc.status})
            return "not-closed"
        body = await self._transcript(doc)
        # A Conflict: written by an earlier delivery that stopped before the end; it stands.
        with contextlib.suppress(Conflict):
            await self._archive.put(
                transcript_name(doc.id),
                body,
                CONTENT_TYPE,
                {"conversationId": doc.id, "schemaVersion": str(SCHEMA_VERSION)},
            )
        await self._audit_export(doc)
        expiring = await self._start_retention(doc.id)
        at = stamp(self._clock.now())

        def recorded(current: ConversationDocument) -> ConversationDocument:
            return current if current.archived_at else current.changed(archived_at=at)

        await conversations.change(self._store, doc.id, recorded)
        log.info(
            "transcript archived",
            extra={"conversation_id": doc.id, "count": expiring},
        )
        return "archived"

    async def _transcript(self, doc: ConversationDocument) -> bytes:
        messages = []
        after = message_id(0)
        while True:
            page = await self._messages.query(
                Query(
                    (where("sortKey", ">", after), where("sortKey", "<", MESSAGE_RANGE_END)),
                    order_by=(("sortKey", False),),
                ),
                partition_key=doc.id,
                max_items=MAX_BATCH_OPERATIONS,
            )
            items = list(page.items)
            messages += [m.view() for m in items]
            if not items or page.continuation is None:
                break
            after = items[-1].sort_key
        view = ConversationView.model_validate(doc.model_dump(mode="json", by_alias=True, exclude_none=True))
        transcript = {
            "schemaVersion": SCHEMA_VERSION,
            "conversationId": doc.id,
            "writtenAt": stamp(self._clock.now()),
            "conversation": view.model_dump(mode="json", by_alias=True, exclude_none=True),
            "messages": messages,
        }
        return json.dumps(transcript, ensure_ascii=False, separators=(",", ":")).encode()

    async def _audit_export(self, doc: ConversationDocument) -> None:
        record = AuditRecord(
            id=f"transcript-export:{doc.id}",
            patient_id=doc.patient_id,
            actor=ARCHIVER,
            roles=[],
            action="export",
            resource=f"transcripts/{transcript_name(doc.id)}",
            at=stamp(self._clock.now()),
        )
        with contextlib.suppress(Conflict):  # recorded by an earlier delivery
            await Stored(self._store, AUDIT, AuditRecord).create(record)

    async def _start_retention(self, conversation_id: str) -> int:
        """`ttl` on every message and message key of the conversation that has none, in batches
        of at most 100 (one partition: each batch all or nothing). A batch that meets a concurrent
        delivery's reads again; documents that have their ttl are never written twice."""
        done = 0
        # Keys first: a key never outlives its message (a sender's retry then answers 409).
        for kind, type_ in ((self._keys, "message-key"), (self._messages, "message")):
            pending = Query((where("type", "=", type_), where("ttl", "undefined")))
            while True:
                page = await kind.query(
                    pending, partition_key=conversation_id, max_items=MAX_BATCH_OPERATIONS
                )
                items: list[Document] = list(page.items)
                if not items:
                    break
                done += await self._expire(conversation_id, items)
        return done

    async def _expire(self, conversation_id: str, items: list[Document]) -> int:
        done = 0
        for chunk in _within_batch_size([doc.changed(ttl=self._retention).body() for doc in items]):
            ops = [BatchOperation.replace(body, items[i].etag) for i, body in chunk]
            try:
                await self._store.container(CONVERSATIONS).batch(conversation_id, ops)
            except BatchFailed as failed:
                if isinstance(failed.error, PreconditionFailed | NotFound):
                    return done  # a concurrent delivery set them first: the next page says what is left
                raise failed.error from None
            done += len(ops)
        return done

    # Reading -------------------------------------------------------------------------------------

    async def read(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> dict[str, Any]:
        """The archived transcript, for a supervisor or an agent who handled the conversation;
        404 for anyone else, an unknown conversation, or one not archived yet. Audited."""
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None:
            raise NotFound("no such conversation")
        if not (principal.has(Role.SUPERVISOR) or principal.subject in handled_by(doc)):
            raise NotFound("no such conversation")
        try:
            body = await self._archive.get(transcript_name(doc.id))
        except NotFound:
            raise NotFound("The conversation has no transcript yet: it is archived once closed.") from None
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action="read",
            resource=f"conversations/{doc.id}/transcript",
            patient_id=doc.patient_id,
            correlation_id=correlation_id,
        )
        transcript: dict[str, Any] = json.loads(body)
        return transcript


# A transactional batch carries at most 2 MB. 100 messages of 4,000 characters fit in UTF-8, but
# not with every character escaped (`\uXXXX`, 6 bytes or 12 for a pair): so batches also stop at
# this size, measured escaped (the larger encoding).
BATCH_BYTES = 1_500_000


def _within_batch_size(bodies: list[dict[str, Any]]) -> list[list[tuple[int, dict[str, Any]]]]:
    chunks: list[list[tuple[int, dict[str, Any]]]] = [[]]
    size = 0
    for i, body in enumerate(bodies):
        length = len(json.dumps(body, separators=(",", ":")))
        if chunks[-1] and size + length > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append((i, body))
        size += length
    return [chunk for chunk in chunks if chunk]


__all__ = ["Outcome", "TranscriptView", "Transcripts", "handled_by", "transcript_name"]
