"""`GET /api/supervisor/kpis`: a range's series and totals, summed from 15-minute buckets.

The range is widened to whole buckets: `from` down to its 15-minute boundary, `to` up so the
range is a whole number of intervals from there (a 1 h or 1 d bucket starts at `from`, so days
follow the caller's midnight: every time zone's offset is a multiple of 15 minutes). It is read
as one single-partition query per UTC day of the scope (`<scope>:<day>`, at most 24 hour
documents each): a 30-day range is 31 queries, whatever the traffic.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from shared.kernel.catalog import KPIS
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import ValidationFailed
from shared.kernel.times import parse_stamp, stamp
from shared.kpis.documents import HourDocument
from shared.kpis.sums import ALL, QUARTER, Sums, add_sums, kpis, quarter_of

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
        async with gate:
            while True:
                page = await container.query(
                    Query((where("type", "=", "kpi-hour"),)),
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
            doc = HourDocument.model_validate(item)
            hour = parse_stamp(doc.hour)
            for q, sums in enumerate(doc.buckets):
                start = hour + q * QUARTER
                if sums and first <= start < last:
                    found[start] = dict(sums)
    return found


async def kpi_range(
    store: DocumentStore,
    start: datetime,
    end: datetime,
    interval: str,
    queue_id: str | None = None,
    agent_id: str | None = None,
) -> dict[str, Any]:
    """`{"from", "to", "interval", "series": [{"start", …KPIs}], "totals": {…KPIs}}`."""
    scope = scope_of(queue_id, agent_id)
    first, last, step = widened(start, end, interval)
    quarters = await quarters_of(store, scope, first, last)
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
