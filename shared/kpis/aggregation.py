"""Applying events to the buckets exactly once per document.

Every event is applied to each hour document it adds to at most once: the document keeps, per
aggregate, the (version, n) of the last event of that aggregate it took, and is written with
If-Match (a create for a new hour). Events of one aggregate arrive in order (a session
subscription; the rebuild reads them in order), so an event at or below the mark is a redelivery
or a replay and is skipped, and an event that added to several documents before a crash adds to
the rest when it comes again. The marks stay small: an hour document carries one per aggregate
that touched that scope in that hour (the conversations of an hour in a queue, its agents), and a
new hour starts a new document.

Utilization needs the interval between an agent's presence events: the agent's last state is its
own document (`presence:<agentId>`) with the same mark; an event first adds the interval it
closes to the hours (each marked), then moves the state on (If-Match), so a crash in between
re-adds nothing and the redelivery completes it.

The same code runs over the store (`StoredLedger`: the consumer) and over memory
(`MemoryLedger`: the rebuild, which writes its result afterwards).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from shared.history.api import Envelope
from shared.kernel.catalog import KPIS
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Stored
from shared.kernel.times import parse_stamp, stamp
from shared.kpis.documents import (
    HourDocument,
    Mark,
    PresenceState,
    hour_id,
    hour_partition,
    presence_partition,
)
from shared.kpis.sums import Part, add_sums, event_parts, hour_of, presence_parts

PRESENCE = "agent.presence"


def merged(
    doc: HourDocument | None, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: Iterable[Part]
) -> HourDocument | None:
    """`doc` (or a new hour) with `parts` added under `mark`; None when the mark says it has them."""
    if doc is None:
        doc = HourDocument(
            id=hour_id(scope, hour),
            partition=hour_partition(scope, hour),
            scope=scope,
            hour=stamp(hour),
            buckets=[{}, {}, {}, {}],
        )
    seen = doc.applied.get(aggregate_id)
    if seen is not None and tuple(seen) >= mark:
        return None
    buckets = [dict(b) for b in doc.buckets]
    outcomes = dict(doc.outcomes)
    for part in parts:
        q = part.quarter.minute // 15
        if part.outcome is not None:
            before = outcomes.get(part.outcome)
            if before is not None:
                add_sums(buckets[before["q"]], before["sums"], -1)
            outcomes[part.outcome] = {"q": q, "sums": dict(part.sums)}
        add_sums(buckets[q], part.sums)
    return doc.changed(buckets=buckets, outcomes=outcomes, applied={**doc.applied, aggregate_id: list(mark)})


class Ledger(Protocol):
    async def add(self, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: list[Part]) -> bool:
        """Add `parts` (all in this scope and hour) unless `mark` is applied; True if written."""
        ...

    async def presence(self, agent_id: str) -> PresenceState | None: ...

    async def save_presence(self, state: PresenceState) -> None:
        """Create, or replace the version read (PreconditionFailed if it changed)."""
        ...


class StoredLedger:
    """The buckets in the `kpis` container, each write conditional on what it read."""

    def __init__(self, store: DocumentStore) -> None:
        self.hours = Stored(store, KPIS, HourDocument)
        self.states = Stored(store, KPIS, PresenceState)
        self.writes = 0

    async def add(self, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: list[Part]) -> bool:
        async def step() -> bool:
            doc = await self.hours.read_or_none(hour_id(scope, hour), hour_partition(scope, hour))
            fresh = merged(doc, scope, hour, aggregate_id, mark, parts)
            if fresh is None:
                return False
            await self._write(self.hours, fresh, doc is None)
            return True

        return await retry(step)

    async def presence(self, agent_id: str) -> PresenceState | None:
        return await self.states.read_or_none(presence_partition(agent_id), presence_partition(agent_id))

    async def save_presence(self, state: PresenceState) -> None:
        await self._write(self.states, state, not state.stored)

    async def _write(self, stored: Stored[Any], doc: Any, new: bool) -> None:
        self.writes += 1
        if not new:
            await stored.replace(doc)
            return
        try:
            await stored.create(doc)
        except Conflict:
            raise Again from None  # another writer created it first: read it and merge again


class MemoryLedger:
    """Buckets in memory (the rebuild): only hours in [`first`, `last`) are kept."""

    def __init__(self, first: datetime, last: datetime) -> None:
        self.first, self.last = first, last
        self.hours: dict[tuple[str, datetime], HourDocument] = {}
        self.states: dict[str, PresenceState] = {}

    async def add(self, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: list[Part]) -> bool:
        if not self.first <= hour < self.last:
            return False
        fresh = merged(self.hours.get((scope, hour)), scope, hour, aggregate_id, mark, parts)
        if fresh is not None:
            self.hours[(scope, hour)] = fresh
        return fresh is not None

    async def presence(self, agent_id: str) -> PresenceState | None:
        return self.states.get(agent_id)

    async def save_presence(self, state: PresenceState) -> None:
        self.states[state.agent_id] = state


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
        id=presence_partition(agent_id),
        partition=presence_partition(agent_id),
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
