"""Applying events to the buckets exactly once per document.

Every event is applied to each hour document it adds to at most once. The hour document (one
scope's hour: its four quarters' sums, nothing else) stays the same size however busy the hour;
beside it, in the same partition, each aggregate that added to it has its own small mark
document (`mark:<YYYY-MM-DDTHH>:<aggregate id>`, shared/kpis/documents.py) with the (version, n)
of the last event of that aggregate it took and what its things counted once by their final
outcome added. An event reads the two (point reads) and writes both in one transactional batch
of the partition: the hour replaced If-Match on what was read (created for a new hour), the mark
created (a first event of the aggregate in this hour) or replaced If-Match; a lost race (another
writer's hour, a concurrent creator) fails the whole batch and the step runs again
(`kernel.retry`). So an event's cost is two point reads and one batch of two small documents per
hour document it touches, whatever the hour's traffic, where the marks inside the hour document
made every event decode and rewrite them all (at thousands of conversations an hour, hundreds of
KB per event, towards Cosmos DB's 2 MB item limit).

Events of one aggregate arrive in order (a session subscription; the rebuild reads them in
order), so an event at or below the mark is a redelivery or a replay and is skipped, and an event
that added to several hour documents before a crash adds to the rest when it comes again (each
hour and its mark are written together or not at all).

Mark documents carry no ttl: they live as long as their hour. A replay of the history of any
age (messages redelivered or sent again days later, a subscription replayed from its start) must
meet the marks the first delivery left, or it would count again, and nothing bounds how old a
replayed event may be. An hour's marks are only ever replaced by the rebuild, which writes them
with the hours of its range and deletes those its history no longer gives.

Utilization needs the interval between an agent's presence events: the agent's last state is its
own document (`presence:<agentId>`, all agents' in the partition `presence`) with the same mark;
an event first adds the interval it closes to the hours (each marked), then moves the state on
(If-Match), so a crash in between re-adds nothing and the redelivery completes it. A range query
adds the intervals still open up to now (shared/kpis/queries.py), without storing them.

The same code runs over the store (`StoredLedger`: the consumer) and over memory
(`MemoryLedger`: the rebuild, which writes its result afterwards).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from shared.history.api import Envelope
from shared.kernel.catalog import KPIS
from shared.kernel.documents import BatchFailed, BatchOperation, DocumentStore
from shared.kernel.errors import Conflict, PreconditionFailed
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Document, Stored
from shared.kernel.times import parse_stamp, stamp
from shared.kpis.documents import (
    PRESENCE_PARTITION,
    HourDocument,
    Mark,
    MarkDocument,
    PresenceState,
    hour_id,
    hour_partition,
    mark_id,
    presence_id,
)
from shared.kpis.sums import Part, add_sums, event_parts, hour_of, presence_parts

PRESENCE = "agent.presence"


def merged(
    doc: HourDocument | None,
    marked: MarkDocument | None,
    scope: str,
    hour: datetime,
    aggregate_id: str,
    mark: Mark,
    parts: Iterable[Part],
) -> tuple[HourDocument, MarkDocument] | None:
    """`doc` (or a new hour) with `parts` added, and the aggregate's mark in it (`marked`, or a
    new one) moved to `mark`; None when the mark says the hour has them."""
    if marked is not None and tuple(marked.applied) >= mark:
        return None
    if doc is None:
        doc = HourDocument(
            id=hour_id(scope, hour),
            partition=hour_partition(scope, hour),
            scope=scope,
            hour=stamp(hour),
            sort_key=stamp(hour),
            buckets=[{}, {}, {}, {}],
        )
    if marked is None:
        marked = MarkDocument(
            id=mark_id(hour, aggregate_id),
            partition=doc.partition,
            scope=scope,
            hour=doc.hour,
            aggregate_id=aggregate_id,
            applied=list(mark),
        )
    buckets = [dict(b) for b in doc.buckets]
    outcomes = dict(marked.outcomes)
    for part in parts:
        q = part.quarter.minute // 15
        if part.outcome is not None:
            before = outcomes.get(part.outcome)
            if before is not None:
                add_sums(buckets[before["q"]], before["sums"], -1)
            outcomes[part.outcome] = {"q": q, "sums": dict(part.sums)}
        add_sums(buckets[q], part.sums)
    return doc.changed(buckets=buckets), marked.changed(applied=list(mark), outcomes=outcomes)


class Ledger(Protocol):
    async def add(self, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: list[Part]) -> bool:
        """Add `parts` (all in this scope and hour) unless `mark` is applied; True if written."""
        ...

    async def presence(self, agent_id: str) -> PresenceState | None: ...

    async def save_presence(self, state: PresenceState) -> None:
        """Create, or replace the version read (PreconditionFailed if it changed)."""
        ...


def _written(doc: Document) -> BatchOperation:
    """Create a document built here, replace one read under the ETag it was read with."""
    if doc.stored:
        return BatchOperation.replace(doc.body(), doc.etag)
    return BatchOperation.create(doc.body())


class StoredLedger:
    """The buckets in the `kpis` container, each write conditional on what it read."""

    def __init__(self, store: DocumentStore) -> None:
        self.container = store.container(KPIS)
        self.hours = Stored(store, KPIS, HourDocument)
        self.marks = Stored(store, KPIS, MarkDocument)
        self.states = Stored(store, KPIS, PresenceState)
        self.writes = 0

    async def add(self, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: list[Part]) -> bool:
        partition = hour_partition(scope, hour)

        async def step() -> bool:
            doc, marked = await asyncio.gather(
                self.hours.read_or_none(hour_id(scope, hour), partition),
                self.marks.read_or_none(mark_id(hour, aggregate_id), partition),
            )
            fresh = merged(doc, marked, scope, hour, aggregate_id, mark, parts)
            if fresh is None:
                return False
            self.writes += 1
            try:
                await self.container.batch(partition, [_written(fresh[0]), _written(fresh[1])])
            except BatchFailed as failed:
                if isinstance(failed.error, Conflict | PreconditionFailed):
                    raise Again from None  # another writer was first: read both and merge again
                raise failed.error from None
            return True

        return await retry(step)

    async def presence(self, agent_id: str) -> PresenceState | None:
        return await self.states.read_or_none(presence_id(agent_id), PRESENCE_PARTITION)

    async def save_presence(self, state: PresenceState) -> None:
        self.writes += 1
        if state.stored:
            await self.states.replace(state)
            return
        try:
            await self.states.create(state)
        except Conflict:
            raise Again from None  # another writer created it first: read it and merge again


class MemoryLedger:
    """Buckets in memory (the rebuild): only hours in [`first`, `last`) are kept."""

    def __init__(self, first: datetime, last: datetime) -> None:
        self.first, self.last = first, last
        self.hours: dict[tuple[str, datetime], HourDocument] = {}
        self.marks: dict[tuple[str, datetime, str], MarkDocument] = {}
        self.states: dict[str, PresenceState] = {}

    async def add(self, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: list[Part]) -> bool:
        if not self.first <= hour < self.last:
            return False
        key = (scope, hour, aggregate_id)
        doc, marked = self.hours.get((scope, hour)), self.marks.get(key)
        fresh = merged(doc, marked, scope, hour, aggregate_id, mark, parts)
        if fresh is None:
            return False
        self.hours[(scope, hour)], self.marks[key] = fresh
        return True

    async def presence(self, agent_id: str) -> PresenceState | None:
        return self.states.get(agent_id)

    async def save_presence(self, state: PresenceState) -> None:
        self.states[state.agent_id] = state

    def documents(self) -> Iterator[HourDocument | MarkDocument]:
        """The hours and their marks, as the consumer would have stored them."""
        yield from self.hours.values()
        yield from self.marks.values()


async def _add_all(ledger: Ledger, aggregate_id: str, mark: Mark, parts: list[Part]) -> int:
    grouped: dict[tuple[str, datetime], list[Part]] = defaultdict(list)
    for part in parts:
        grouped[(part.scope, hour_of(part.quarter))].append(part)
    written = 0
    for (scope, hour), some in grouped.items():
        written += await ledger.add(scope, hour, aggregate_id, mark, some)
    return written


async def apply_event(ledger: Ledger, envelope: Envelope, short_abandon_seconds: float) -> int:
    """Apply one event (at most once per document); returns how many documents it changed."""
    mark: Mark = (envelope.version, envelope.n)
    if envelope.type == PRESENCE:
        return await retry(lambda: _apply_presence(ledger, envelope, mark))
    body: Mapping[str, Any] = envelope.model_dump(by_alias=True)
    return await _add_all(ledger, envelope.aggregate_id, mark, event_parts(body, short_abandon_seconds))


async def _apply_presence(ledger: Ledger, envelope: Envelope, mark: Mark) -> int:
    agent_id = envelope.aggregate_id
    state = await ledger.presence(agent_id)
    if state is not None and tuple(state.applied) >= mark:
        return 0
    d = envelope.data
    at = stamp(parse_stamp(d.get("at") or envelope.at))
    previous = None if state is None else state.model_dump(by_alias=True)
    written = await _add_all(ledger, agent_id, mark, presence_parts(agent_id, previous, parse_stamp(at)))
    fresh = PresenceState(
        id=presence_id(agent_id),
        partition=PRESENCE_PARTITION,
        agent_id=agent_id,
        status=str(d.get("status") or "offline"),
        load=int(d.get("load") or 0),
        capacity=int(d.get("capacity") or 0),
        queues=[str(q) for q in d.get("queues") or ()],
        at=at,
        applied=list(mark),
    )
    await ledger.save_presence(fresh if state is None else fresh.over(state))
    return written + 1
