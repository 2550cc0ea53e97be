"""`python -m ops kpis rebuild --from DAY --to DAY`: recompute the buckets of whole UTC days from
the event history (shared/history), with the consumer's own code over memory, then write them.

It reads the history from `LOOKBACK` before the first day (an agent's presence interval that
opened earlier) to `LATE` after the last (survey answers, delivery reports and appointment
outcomes count at their sending or start, and can arrive later), keeps only hours inside the
range, then replaces every hour document of the range and deletes those the history no longer
gives. Each aggregate's events are applied in the order they were written, so the marks the
rebuilt documents carry are the ones the live consumer would have left: a later live event
applies on top, an earlier one is skipped.

Run it for days the consumer has finished with (before today): an event the live consumer
applies to an hour of the range while the rebuild writes it can be lost if the history had not
filed it yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shared.history.api import events_between, parse_envelope
from shared.kernel.catalog import KPIS
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.kpis.aggregation import MemoryLedger, apply_event
from shared.kpis.documents import HourDocument

LOOKBACK = timedelta(days=7)
LATE = timedelta(days=31)
MAX_DAYS = 366


@dataclass(frozen=True)
class Rebuilt:
    events: int
    written: int
    deleted: int


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
    hours = Stored(store, KPIS, HourDocument)
    kept = set()
    for doc in ledger.hours.values():
        await hours.upsert(doc)
        kept.add((doc.partition, doc.id))
    deleted = 0
    # Ops only: a fan-out over the range's partitions, paged, to find hours no longer produced.
    container = store.container(KPIS)
    query = Query(
        (
            where("type", "=", "kpi-hour"),
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
    return Rebuilt(events=events, written=len(kept), deleted=deleted)
