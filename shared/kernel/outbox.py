"""The transactional outbox: every change of an aggregate (a conversation, an appointment, an
agent) and the events it causes are written in one transaction, so other capabilities learn of
exactly the changes that happened (never one that was rolled back, never miss one that stands).

* An **aggregate** document (`Aggregate`) lives in a container partitioned by its own id field
  (`conversations` by `/conversationId`, `appointments` by `/appointmentId`, `agents` by
  `/agentId`), so the aggregate, its children (a conversation's messages) and its **event
  documents** share one logical partition and one transactional batch (Cosmos DB: one partition,
  at most 100 operations, all or nothing; the embedded store: one SQLite transaction).
* Every aggregate carries `version`, +1 per committed change. A service attaches the events of a
  change to the document it returns (`doc.emit(type, at, **data)`); `Aggregates.create/replace`
  then writes the document and an event document per event, `evt:<version>.<n>` (n from 1 within
  one write), in one batch. The ETag check on the aggregate is what makes `version` unique, so two
  writers can never produce the same event id.
* An event document (`EventDocument`, `type: event`) is immutable and expires after `EVENT_TTL`.
  The relay (`functions/events.py`, a change-feed trigger per aggregate container) publishes each
  one to the topic `events` with `message_id` = `<aggregate id>:<version>.<n>` (≤ 128 characters:
  ids are ≤ 100), `session_id` = the aggregate id and `subject` = the event type, in change-feed
  order (in order within a partition). Its body is `envelope()`: ids, stamps and attributes, never
  PHI.

A write with no event and no child document is a plain point operation; a write with either is
one batch (one round trip).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal, Self

from pydantic import Field

from shared.kernel.documents import MAX_BATCH_OPERATIONS, BatchFailed, BatchOperation, Item
from shared.kernel.errors import Conflict
from shared.kernel.messages import OutgoingMessage
from shared.kernel.stored import D, Document, Stored, load

# Long enough for a relay stopped over a long weekend or a failed deployment to catch up (an
# expired event never reaches the change feed), and as long as the topic keeps a message
# (`events` default TTL 14 days), so an event is never dropped by the store before the bus would.
EVENT_TTL = timedelta(days=14)


@dataclass(frozen=True)
class Event:
    """One event of a change: its type (`conversation.offered`), when it happened and its
    attributes (ids, stamps, counts; never PHI)."""

    type: str
    at: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Aggregate(Document):
    """A document other capabilities learn about through events. `PARTITION_FIELD` names the
    field (camelCase, as stored) its container is partitioned by; it holds the aggregate's id."""

    OUTBOX: ClassVar[bool] = True
    PARTITION_FIELD: ClassVar[str]

    version: int = 0
    # The events of the change being made: never stored, written as event documents beside it.
    pending_events: tuple[Event, ...] = Field(default=(), exclude=True, repr=False)

    def emit(self, type: str, at: str, /, **data: Any) -> Self:
        """A copy that will write `type` with the next version (kept by later copies)."""
        return self.model_copy(update={"pending_events": (*self.pending_events, Event(type, at, data))})

    @property
    def aggregate_id(self) -> str:
        return self.id


def event_id(version: int, n: int) -> str:
    return f"evt:{version}.{n}"


def message_id(aggregate_id: str, version: int, n: int) -> str:
    return f"{aggregate_id}:{version}.{n}"


class EventDocument(Document):
    """An event as the outbox stores it, in its aggregate's partition (exactly one of the three
    partition fields is set: the aggregate's)."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["event"] = "event"
    event_type: str
    aggregate_id: str
    version: int
    n: int
    at: str
    data: dict[str, Any] = {}
    ttl: int
    conversation_id: str | None = None
    appointment_id: str | None = None
    agent_id: str | None = None
    patient_id: str | None = None

    @property
    def message_id(self) -> str:
        return message_id(self.aggregate_id, self.version, self.n)

    def envelope(self) -> dict[str, Any]:
        """The message body consumers read."""
        return {
            "id": self.message_id,
            "type": self.event_type,
            "aggregateId": self.aggregate_id,
            "version": self.version,
            "at": self.at,
            "data": self.data,
        }


def event_message(item: Item) -> OutgoingMessage | None:
    """The `events` topic message of a stored event document; None for any other document (the
    change feed carries every document of the container)."""
    if item.get("type") != "event":
        return None
    doc = load(EventDocument, item)
    return OutgoingMessage(
        body=json.dumps(doc.envelope(), separators=(",", ":")).encode(),
        message_id=doc.message_id,
        subject=doc.event_type,
        session_id=doc.aggregate_id,
    )


def _event_documents(doc: Aggregate, version: int) -> list[EventDocument]:
    ttl = int(EVENT_TTL.total_seconds())
    return [
        EventDocument.model_validate(
            {
                "id": event_id(version, n),
                "eventType": event.type,
                "aggregateId": doc.aggregate_id,
                "version": version,
                "n": n,
                "at": event.at,
                "data": dict(event.data),
                "ttl": ttl,
                doc.PARTITION_FIELD: doc.aggregate_id,
            }
        )
        for n, event in enumerate(doc.pending_events, start=1)
    ]


class ChildConflict(Conflict):
    """A child document created with the change already exists (`id` names it): nothing of the
    change was written. A message key meeting its first message is one."""

    def __init__(self, id: str) -> None:
        super().__init__("A document created with the change exists already.")
        self.id = id


class Aggregates(Stored[D]):
    """The aggregates of kind `model` in one container: reads as `Stored`, and every write
    through the outbox (the version bumped, the pending events written beside the document)."""

    async def create(
        self, doc: D, *, children: Sequence[Document] = (), upserts: Sequence[Document] = ()
    ) -> D:
        """Create the aggregate at version 1 with its events (and `children`, created too;
        `upserts` as for `replace`)."""
        return await self._commit(doc, 1, BatchOperation.create, None, children, upserts=upserts)

    async def replace(
        self,
        doc: D,
        *,
        unconditional: bool = False,
        children: Sequence[Document] = (),
        replaced: Sequence[Document] = (),
        upserts: Sequence[Document] = (),
    ) -> D:
        """Replace the version `doc` was read as (`PreconditionFailed` if it changed since), with
        its events, `children` (created), `replaced` (child documents replaced under the ETag they
        were read with: a consult in its conversation's partition) and `upserts` (documents of the
        partition the aggregate's ETag guards: written whatever their state) in one transaction."""
        assert isinstance(doc, Aggregate)
        if unconditional and doc.pending_events:
            raise ValueError("a change with events must be conditional: its version names them")
        etag = None if unconditional else doc.etag
        return await self._commit(
            doc, doc.version + 1, BatchOperation.replace, etag, children, replaced, upserts
        )

    async def upsert(self, doc: D) -> D:
        raise TypeError("aggregates are created or replaced, never upserted (their version counts changes)")

    async def _commit(
        self,
        doc: D,
        version: int,
        operation: Any,
        etag: str | None,
        children: Sequence[Document],
        replaced: Sequence[Document] = (),
        upserts: Sequence[Document] = (),
    ) -> D:
        assert isinstance(doc, Aggregate)
        fresh = doc.model_copy(update={"version": version})
        body = fresh.body()
        events = _event_documents(doc, version)
        container = self._container
        if not events and not children and not replaced and not upserts:
            if etag is None and operation is BatchOperation.create:
                item = await container.create(body)
            else:
                item = await container.replace(body, etag=etag)
            return _settled(fresh, item)
        ops = [operation(body, etag) if etag is not None else operation(body)]
        ops += [BatchOperation.create(child.body()) for child in children]
        ops += [BatchOperation.replace(child.body(), child.etag) for child in replaced]
        ops += [BatchOperation.upsert(other.body()) for other in upserts]
        ops += [BatchOperation.create(event.body()) for event in events]
        if len(ops) > MAX_BATCH_OPERATIONS:
            raise ValueError(f"a change writes at most {MAX_BATCH_OPERATIONS} documents")
        try:
            items = await container.batch(doc.aggregate_id, ops)
        except BatchFailed as failed:
            if failed.index == 0:
                raise failed.error from None
            if 0 < failed.index <= len(children) and isinstance(failed.error, Conflict):
                raise ChildConflict(children[failed.index - 1].id) from None
            raise failed.error from None
        first = items[0]
        assert first is not None
        return _settled(fresh, first)


def _settled(doc: D, item: Item) -> D:
    """The document as written: its new ETag, no pending events."""
    return doc.model_copy(update={"store_etag": item.get("_etag"), "pending_events": ()})


__all__ = [
    "EVENT_TTL",
    "Aggregate",
    "Aggregates",
    "ChildConflict",
    "Event",
    "EventDocument",
    "event_id",
    "event_message",
    "message_id",
]
