"""KPI aggregation cost as history grows: store operations and time per event, and a 30-day
query's latency, with 10k, 100k and 1M events of history already counted.

    python -m bench.kpis [--sizes 10000,100000,1000000] [--measure 3000] [--per-hour 100]

For each size: a fresh embedded store is filled with the buckets and presence states that `size`
events leave (the consumer's own aggregation code over memory, then written: the same documents
the consumer would have written one event at a time, made faster); then the next `measure` events
go through the consumer's store path (`StoredLedger`, If-Match writes), counted through the store
port (bench/counting.py). The traffic: 100 conversations an hour (`--per-hour`: a busier hour
must cost an event no more, its marks being documents of their own) over 4 queues and 20
agents, each waiting, offered, accepted, a first agent reply, wrap-up and close, with the
agent's presence on accept and close (8 events a conversation). The 30-day query's window is
full of data only from about 700k events (10k events are half a day of this traffic, 100k five
days, 1M 52 days).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.counting import CountingStore

START = datetime(2026, 1, 1, tzinfo=UTC)
QUEUES = ("general", "scheduling", "urgent-care", "spanish")
AGENTS = 20
SPACING = timedelta(seconds=36)  # 100 conversations an hour


def _stamp(when: datetime) -> str:
    from shared.kernel.times import stamp

    return stamp(when)


def traffic(first: int = 0, spacing: timedelta = SPACING) -> Iterator[dict[str, Any]]:
    """Events of conversations `first`, `first` + 1, … (one every `spacing`), each aggregate's in
    order."""
    versions: dict[str, int] = {}
    loads: dict[str, int] = {}

    def event(aggregate: str, kind: str, when: datetime, **data: Any) -> dict[str, Any]:
        version = versions[aggregate] = versions.get(aggregate, 0) + 1
        return {
            "id": f"{aggregate}:{version}.1",
            "type": kind,
            "aggregateId": aggregate,
            "version": version,
            "at": _stamp(when),
            "data": data,
        }

    def presence(agent: str, at: datetime, change: int) -> dict[str, Any]:
        loads[agent] = loads.get(agent, 0) + change
        status = "available" if loads[agent] < 2 else "dnd"
        return event(
            agent,
            "agent.presence",
            at,
            status=status,
            load=loads[agent],
            capacity=2,
            queues=list(QUEUES),
            at=_stamp(at),
        )

    n = first
    while True:
        cid, queue, agent = f"c-{n}", QUEUES[n % len(QUEUES)], f"a-{n % AGENTS}"
        t0 = START + n * spacing
        wait = 5 + n % 40
        accepted, replied, wrapup, closed = (
            t0 + timedelta(seconds=s) for s in (wait, wait + 30, wait + 300, wait + 360)
        )
        yield event(
            cid,
            "conversation.waiting",
            t0,
            queueId=queue,
            queuedAt=_stamp(t0),
            first=True,
            serviceLevelSeconds=30,
            firstQueueId=queue,
        )
        yield event(
            cid, "conversation.offered", t0 + timedelta(seconds=wait - 2), queueId=queue, agentId=agent
        )
        yield event(
            cid,
            "conversation.accepted",
            accepted,
            queueId=queue,
            agentId=agent,
            first=True,
            acceptedAt=_stamp(accepted),
            waitSeconds=float(wait),
            firstWaitSeconds=float(wait),
            serviceLevelSeconds=30,
            firstQueueId=queue,
        )
        yield presence(agent, accepted, +1)
        yield event(
            cid,
            "conversation.message",
            replied,
            queueId=queue,
            agentId=agent,
            firstAgentResponse=True,
            responseSeconds=30.0,
        )
        yield event(cid, "conversation.wrapup", wrapup, queueId=queue, agentId=agent)
        yield event(
            cid,
            "conversation.closed",
            closed,
            queueId=queue,
            agentId=agent,
            handled=True,
            activeSeconds=300.0,
            wrapupSeconds=60.0,
            closedAt=_stamp(closed),
        )
        yield presence(agent, closed, -1)
        n += 1


async def prefill(store: Any, events: Iterator[dict[str, Any]], size: int) -> int:
    from shared.kernel.catalog import KPIS
    from shared.kernel.stored import Stored
    from shared.kpis.aggregation import MemoryLedger, apply_event
    from shared.kpis.api import parse_envelope
    from shared.kpis.documents import PresenceState
    from shared.kpis.rebuild import write_documents

    ledger = MemoryLedger(datetime(1900, 1, 1, tzinfo=UTC), datetime(2199, 1, 1, tzinfo=UTC))
    for _ in range(size):
        await apply_event(ledger, parse_envelope(next(events)), 10)
    await write_documents(store, ledger.documents())
    states = Stored(store, KPIS, PresenceState)
    for state in ledger.states.values():
        await states.upsert(state.model_copy(update={"store_etag": None}))
    return len(ledger.hours)


async def one_size(size: int, measure: int, spacing: timedelta = SPACING) -> dict[str, Any]:
    from shared.config import Settings
    from shared.kernel.clock import SystemClock
    from shared.kpis.aggregation import StoredLedger, apply_event
    from shared.kpis.api import kpi_range, parse_envelope
    from shared.runtime import build_runtime

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            PSC_AUTH_MODE="dev",
            PSC_DEV_JWT_SECRET="b" * 40,
            PSC_DATA_DIR=tmp,
            PSC_STORE="embedded",
            PSC_BUS="embedded",
        )
        plain = await build_runtime(settings, clock=SystemClock())
        try:
            events = traffic(spacing=spacing)
            began = time.perf_counter()
            documents = await prefill(plain.store, events, size)
            filled = time.perf_counter() - began
            counting = CountingStore(plain.store)
            runtime = dataclasses.replace(plain, store=counting)
            ledger = StoredLedger(runtime.store)
            took: list[float] = []
            last_at = START
            for _ in range(measure):
                envelope = parse_envelope(next(events))
                last_at = max(last_at, datetime.fromisoformat(envelope.at.replace("Z", "+00:00")))
                began = time.perf_counter()
                await apply_event(ledger, envelope, 10)
                took.append(time.perf_counter() - began)
            counts = counting.take()
            end = last_at.replace(minute=0, second=0, microsecond=0)
            queries = {}
            for label, params in (
                ("all, 30 d by day", ("1d", None)),
                ("one queue, 30 d by 15 min", ("15m", "general")),
            ):
                interval, queue = params
                runs = []
                for _ in range(5):
                    began = time.perf_counter()
                    await kpi_range(plain.store, end - timedelta(days=30), end, interval, queue)
                    runs.append(time.perf_counter() - began)
                queries[label] = statistics.median(runs)
            return {
                "size": size,
                "documents": documents,
                "fill_seconds": filled,
                "ops_per_event": {k: v / measure for k, v in sorted(counts.items()) if ":" not in k},
                "us_per_event_mean": statistics.mean(took) * 1e6,
                "us_per_event_p50": statistics.median(took) * 1e6,
                "us_per_event_p99": sorted(took)[int(0.99 * len(took))] * 1e6,
                "query_ms": {k: v * 1000 for k, v in queries.items()},
            }
        finally:
            await plain.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--measure", type=int, default=3000)
    parser.add_argument("--per-hour", type=int, default=100, help="conversations an hour")
    args = parser.parse_args()
    spacing = timedelta(hours=1) / args.per_hour
    for size in (int(s) for s in args.sizes.split(",")):
        row = asyncio.run(one_size(size, args.measure, spacing))
        ops = ", ".join(f"{k} {v:.2f}" for k, v in row["ops_per_event"].items())
        print(
            f"history {row['size']:>9,} events ({row['documents']:,} hour documents, "
            f"{row['size'] // 8 * spacing.total_seconds() / 86400:.1f} days of "
            f"{args.per_hour} conversations an hour, "
            f"filled in {row['fill_seconds']:.0f} s): "
            f"per event {ops}; {row['us_per_event_mean']:.0f} µs mean, p50 {row['us_per_event_p50']:.0f}, "
            f"p99 {row['us_per_event_p99']:.0f}; 30-day query "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in row["query_ms"].items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
