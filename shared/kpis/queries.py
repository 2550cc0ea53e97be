"""`GET /api/supervisor/kpis`: a range's series and totals, summed from 15-minute buckets.

The range is widened to whole buckets: `from` down to its 15-minute boundary, `to` up so the
range is a whole number of intervals from there (a 1 h or 1 d bucket starts at `from`, so days
follow the caller's midnight: every time zone's offset is a multiple of 15 minutes). It is read
as one single-partition query per UTC day of the scope (`<scope>:<day>`, at most 24 hour
documents each): a 30-day range is 31 queries, whatever the traffic. The partition also holds
the hours' mark documents (one per aggregate and hour, shared/kpis/aggregation.py): the query
names the hours by type and ranges their `sortKey` (the hour's stamp), the field the embedded
store indexes, so it walks the day's hours only, never its marks.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

from shared.kernel.catalog import KPIS
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import ValidationFailed
from shared.kernel.times import parse_stamp, stamp
from shared.kpis.documents import PRESENCE_PARTITION
from shared.kpis.sums import ALL, QUARTER, Sums, add_sums, kpis, presence_parts, quarter_of

INTERVALS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
MAX_RANGE = timedelta(days=93)
PARALLEL_DAYS = 8


def scope_of(queue_id: str | None, agent_id: str | None) -> str:
    if queue_id and agent_id:
        raise ValidationFailed([{"field": "query.agentId", "message": "give queueId or agentId, not both"}])
    if queue_id:
        return f"queue:{queue_id}"
    if agent_id:
        return f"agent:{agent_id}"
    return ALL


def widened(start: datetime, end: datetime, interval: str) -> tuple[datetime, datetime, timedelta]:
    """The range as whole buckets, or ValidationFailed naming what is wrong."""
    step = INTERVALS.get(interval)
    if step is None:
        raise ValidationFailed([{"field": "query.interval", "message": "must be one of 15m, 1h, 1d"}])
    if start > end:
        raise ValidationFailed([{"field": "query.from", "message": "must not be after `to`"}])
    if end - start > MAX_RANGE:
        raise ValidationFailed([{"field": "query.to", "message": "the range may span 93 days at most"}])
    first = quarter_of(start)
    count = -(-(end - first) // step)  # ceiling division of timedeltas
    return first, first + count * step, step


async def quarters_of(
    store: DocumentStore, scope: str, first: datetime, last: datetime
) -> dict[datetime, Sums]:
    """The non-empty 15-minute buckets of `scope` in [first, last)."""
    container = store.container(KPIS)
    days = []
    day = first.date()
    while day <= (last - timedelta(microseconds=1)).date():
        days.append(day)
        day += timedelta(days=1)
    gate = asyncio.Semaphore(PARALLEL_DAYS)

    async def read(day: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        continuation = None
        midnight = datetime.combine(day, time(), UTC)
        hours = Query(
            (
                where("type", "=", "kpi-hour"),
                where("sortKey", ">=", stamp(midnight)),
                where("sortKey", "<", stamp(midnight + timedelta(days=1))),
            )
        )
        async with gate:
            while True:
                page = await container.query(
                    hours,
                    partition_key=f"{scope}:{day.isoformat()}",
                    max_items=24,
                    continuation=continuation,
                )
                items += page.items
                continuation = page.continuation
                if not continuation:
                    return items

    found: dict[datetime, Sums] = {}
    for items in await asyncio.gather(*(read(d) for d in days)):
        for item in items:
            # Read as stored, not validated: the sums were checked when written (a 30-day query
            # reads up to 744 documents).
            hour = parse_stamp(item["hour"])
            for q, sums in enumerate(item["buckets"]):
                start = hour + q * QUARTER
                if sums and first <= start < last:
                    found[start] = dict(sums)
    return found


async def open_presence(
    store: DocumentStore, scope: str, first: datetime, last: datetime, now: datetime
) -> dict[datetime, Sums]:
    """Utilization of the intervals no event has closed yet: each logged-in agent's last state
    from its stamp until `now` (docs/KPIS.md: an agent with no event in a bucket contributes the
    state of their last event), in [first, last). Read, never stored: the next presence event
    stores the interval when it closes it."""
    until = min(now, last)
    found: dict[datetime, Sums] = {}
    if until <= first:
        return found
    continuation = None
    while True:
        page = await store.container(KPIS).query(
            Query((where("type", "=", "kpi-presence"),)),
            partition_key=PRESENCE_PARTITION,
            max_items=1000,
            continuation=continuation,
        )
        for item in page.items:
            since = max(parse_stamp(item["at"]), first)  # an interval opened long ago: from `first`
            for part in presence_parts(item["agentId"], {**item, "at": stamp(since)}, until):
                if part.scope == scope:
                    add_sums(found.setdefault(part.quarter, {}), part.sums)
        continuation = page.continuation
        if not continuation:
            return found


async def kpi_range(
    store: DocumentStore,
    start: datetime,
    end: datetime,
    interval: str,
    queue_id: str | None = None,
    agent_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`{"from", "to", "interval", "series": [{"start", …KPIs}], "totals": {…KPIs}}`; with `now`,
    agents' presence intervals still open add their utilization up to `now`."""
    scope = scope_of(queue_id, agent_id)
    first, last, step = widened(start, end, interval)
    quarters = await quarters_of(store, scope, first, last)
    if now is not None:
        for quarter, sums in (await open_presence(store, scope, first, last, now)).items():
            if first <= quarter < last:
                add_sums(quarters.setdefault(quarter, {}), sums)
    series: list[dict[str, Any]] = []
    totals: Sums = {}
    bucket = first
    while bucket < last:
        summed: Sums = {}
        quarter = bucket
        while quarter < bucket + step:
            add_sums(summed, quarters.get(quarter, {}))
            quarter += QUARTER
        add_sums(totals, summed)
        series.append({"start": stamp(bucket), **kpis(summed)})
        bucket += step
    return {
        "from": stamp(first),
        "to": stamp(last),
        "interval": interval,
        "series": series,
        "totals": kpis(totals),
    }
