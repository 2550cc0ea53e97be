"""`python -m ops kpis rebuild --from DAY --to DAY`: recompute the buckets of whole UTC days from
the event history (shared/history), with the consumer's own code over memory, then write them.

It reads the history from `LOOKBACK` before the first day (an agent's presence interval that
opened earlier) to `LATE` after the last (survey answers, delivery reports and appointment
outcomes count at their sending or start, and can arrive later), keeps only hours inside the
range, then replaces every hour document of the range and its mark documents (upserts, a batch
per partition of up to 100) and deletes the hours and marks the history no longer gives. Each
aggregate's events are applied in the order they were written, so the marks the rebuild leaves
are the ones the live consumer would have left: a later live event applies on top, an earlier
one is skipped.

Run it for days the consumer has finished with (before today): an event the live consumer
applies to an hour of the range while the rebuild writes it can be lost if the history had not
filed it yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shared.history.api import events_between, parse_envelope
from shared.kernel.catalog import KPIS
from shared.kernel.documents import MAX_BATCH_OPERATIONS, BatchOperation, DocumentStore, Query, where
from shared.kernel.times import stamp
from shared.kpis.aggregation import MemoryLedger, apply_event
from shared.kpis.documents import HourDocument, MarkDocument

LOOKBACK = timedelta(days=7)
LATE = timedelta(days=31)
MAX_DAYS = 366


@dataclass(frozen=True)
class Rebuilt:
    events: int
    written: int  # hour documents
    marks: int
    deleted: int  # hour and mark documents


async def rebuild(
    store: DocumentStore, first: date, last: date, short_abandon_seconds: float, today: date
) -> Rebuilt:
    if last < first:
        raise ValueError("--to is before --from")
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"rebuild at most {MAX_DAYS} days at a time")
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    ledger = MemoryLedger(start, end)
    events = 0
    async for item in events_between(store, first - LOOKBACK, min(last + LATE, max(today, last))):
        await apply_event(ledger, parse_envelope(item), short_abandon_seconds)
        events += 1
    kept = await write_documents(store, ledger.documents())
    deleted = 0
    # Ops only: a fan-out over the range's partitions, paged, to find hours and marks no longer
    # produced.
    container = store.container(KPIS)
    query = Query(
        (
            where("type", "in", ["kpi-hour", "kpi-mark"]),
            where("hour", ">=", stamp(start)),
            where("hour", "<", stamp(end)),
        )
    )
    stale: list[tuple[str, str]] = []
    continuation = None
    while True:
        page = await container.query_cross_partition(query, max_items=500, continuation=continuation)
        stale += [(i["partition"], i["id"]) for i in page.items if (i["partition"], i["id"]) not in kept]
        continuation = page.continuation
        if not continuation:
            break
    for partition, id in stale:
        await container.delete(id, partition)
        deleted += 1
    return Rebuilt(events=events, written=len(ledger.hours), marks=len(ledger.marks), deleted=deleted)


async def write_documents(
    store: DocumentStore, documents: Iterable[HourDocument | MarkDocument]
) -> set[tuple[str, str]]:
    """Upsert `documents` (a `MemoryLedger`'s), a batch per partition of up to 100; returns their
    (partition, id)s."""
    by_partition: dict[str, list[HourDocument | MarkDocument]] = defaultdict(list)
    for doc in documents:
        by_partition[doc.partition].append(doc)
    container = store.container(KPIS)
    kept: set[tuple[str, str]] = set()
    for partition, docs in by_partition.items():
        for first in range(0, len(docs), MAX_BATCH_OPERATIONS):
            chunk = docs[first : first + MAX_BATCH_OPERATIONS]
            await container.batch(partition, [BatchOperation.upsert(doc.body()) for doc in chunk])
            kept.update((partition, doc.id) for doc in chunk)
    return kept
