"""Scheduling figures on the embedded store: free-slot search (the first page of one provider
over 62 days; a 5-minute calendar open around the clock over 62 days, page by page, with the
longest stall of the event loop while walking every page; 500 providers over one day), the store
operations one booking / reschedule / cancel costs (counted through the store port by
bench/counting.py's counting store: `point.<op>`, `query.in-partition`, `query.cross-partition`,
`batch`, each also per container as `<container>:<kind>`), and 50 concurrent bookings of one slot.

    python -m bench.scheduling [--runs 5]

Targets (issue 5): a booking is point operations plus at most one in-partition query; a search
page is one point read plus one in-partition query per chunk of the grid it needs (issue 11: the
work per request follows the page, not the 62-day window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.counting import CountingStore
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.auth.principal import Principal
from shared.kernel.catalog import CONTAINERS, PATIENTS
from shared.kernel.clock import ManualClock
from shared.kernel.errors import Conflict
from shared.kernel.messages import OutgoingMessage
from shared.scheduling.booking import Scheduling
from shared.scheduling.model import BookingRequest, Calendar, Provider, SlotQuery

AGENT = Principal(subject="bench-agent", name=None, roles=frozenset({"Agent"}))
ZONES = ["Europe/Warsaw", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "America/Los_Angeles"]
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday; the window crosses both March DST changes


def provider(zone: str, slot: int = 15) -> Provider:
    week = {d: [["08:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
    return Provider.model_validate(
        {
            "name": "Bench",
            "specialty": "bench",
            "timeZone": zone,
            "slotMinutes": slot,
            "weeklyHours": {**week, "sat": [["09:00", "12:00"]]},
            "exceptions": [{"date": "2026-03-20", "hours": []}],
            "bookingRules": {"maxDaysAhead": 120, "minNoticeMinutes": 0},
        }
    )


class NullBus:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, queue: str, message: OutgoingMessage) -> None:
        self.sent += 1


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def _timed(runs: int, make: Any) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await make()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def _longest_stall(work: Any) -> tuple[Any, float]:
    """Run `work` beside a task that notes the longest time the event loop did not come back to it."""
    worst, done = 0.0, False

    async def tick() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        return await work(), worst
    finally:
        done = True
        await ticker


async def bench(tmp: Path, runs: int) -> dict[str, Any]:
    clock = ManualClock(NOW)
    store = CountingStore(SqliteDocumentStore(tmp / "store.sqlite3", CONTAINERS, clock))
    bus = NullBus()
    service = Scheduling(store, bus, clock)  # type: ignore[arg-type]
    result: dict[str, Any] = {}
    try:
        # Bookings name existing patients: the ones every section below books for.
        for patient_id in [f"p-{i}" for i in range(300)] + [f"c-{i}" for i in range(50)]:
            await store.container(PATIENTS).upsert({"id": patient_id, "type": "patient", "name": "Bench"})
        # -- one provider, 62 days, with 300 booked slots in the window ------------------------
        await service.put_provider(AGENT, "dr-one", provider("Europe/Warsaw"), "bench-setup-0001")
        calendar = Calendar.of(provider("Europe/Warsaw"))
        window = SlotQuery.model_validate({"from": "2026-03-02", "to": "2026-05-02"})
        grid = list(
            calendar.slots_between(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 5, 3, tzinfo=UTC))
        )
        for i, (start, _) in enumerate(grid[::7][:300]):
            await service.book(
                AGENT,
                BookingRequest(providerId="dr-one", start=start, patientId=f"p-{i}", reason="bench"),
                idempotency_key=None,
                correlation_id="bench-setup-0001",
            )

        async def grid_only() -> int:
            return len(
                list(
                    calendar.slots_between(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 5, 3, tzinfo=UTC))
                )
            )

        store.counts.clear()
        free = await service.free_slots("dr-one", window)
        search_ops = dict(store.counts)
        result["search_one_provider_62_days"] = {
            "free_slots": len(free.slots),
            "grid_slots": len(grid),
            "median_ms": _ms(await _timed(runs, lambda: service.free_slots("dr-one", window))),
            "calendar_only_median_ms": _ms(await _timed(runs, grid_only)),
            "store_ops": search_ops,
        }

        # -- a 5-minute calendar open around the clock, the whole 62-day window, page by page ----
        around_the_clock = {
            d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        }
        dense = provider("Europe/Warsaw", slot=5).model_copy(update={"weeklyHours": around_the_clock})
        await service.put_provider(AGENT, "dr-dense", dense, "bench-setup-0001")
        wide = {"from": "2026-03-02", "to": "2026-05-02"}

        async def walk() -> tuple[int, int]:
            pages, slots, token = 0, 0, None
            while True:
                query = SlotQuery.model_validate({**wide, "maxItems": 200, "continuationToken": token})
                answer = await service.free_slots("dr-dense", query)
                pages, slots, token = pages + 1, slots + len(answer.slots), answer.continuationToken
                if token is None:
                    return pages, slots

        first = await service.free_slots("dr-dense", SlotQuery.model_validate(wide))
        (pages, slots), stall = await _longest_stall(walk)
        result["search_62_days_5_minute_calendar"] = {
            "first_page_slots": len(first.slots),
            "first_page_bytes": len(first.model_dump_json(exclude_none=True)),
            "first_page_median_ms": _ms(
                await _timed(runs, lambda: service.free_slots("dr-dense", SlotQuery.model_validate(wide)))
            ),
            "pages_of_200": pages,
            "slots_in_window": slots,
            "whole_window_median_ms": _ms(await _timed(runs, walk)),
            "longest_event_loop_stall_ms": _ms(stall),
        }

        # -- 500 providers, one day --------------------------------------------------------------
        for i in range(500):
            await service.put_provider(
                AGENT,
                f"dr-{i:03d}",
                provider(ZONES[i % len(ZONES)], slot=(15, 20, 30)[i % 3]),
                "bench-setup-0001",
            )
        day = SlotQuery.model_validate({"from": "2026-03-03", "to": "2026-03-03"})

        async def all_sequential() -> int:
            return sum([len((await service.free_slots(f"dr-{i:03d}", day)).slots) for i in range(500)])

        async def all_gathered() -> int:
            answers = await asyncio.gather(*(service.free_slots(f"dr-{i:03d}", day) for i in range(500)))
            return sum(len(a.slots) for a in answers)

        store.counts.clear()
        total = await all_gathered()
        ops = {k: v for k, v in store.counts.items() if ":" not in k}
        result["search_500_providers_1_day"] = {
            "free_slots": total,
            "sequential_median_ms": _ms(await _timed(runs, all_sequential)),
            "gathered_median_ms": _ms(await _timed(runs, all_gathered)),
            "store_ops": ops,
        }

        # -- store operations per command -----------------------------------------------------------
        free_day = list(Calendar.of(provider("America/New_York")).slots_on(date(2026, 3, 10)))
        await service.put_provider(AGENT, "dr-ops", provider("America/New_York"), "bench-setup-0001")
        per: dict[str, dict[str, float]] = {}

        async def measure(label: str, count: int, action: Any) -> list[Any]:
            store.counts.clear()
            sent = bus.sent
            start = time.perf_counter()
            out = [await action(i) for i in range(count)]
            elapsed = time.perf_counter() - start
            per[label] = {k: round(v / count, 2) for k, v in sorted(store.counts.items())}
            per[label]["bus_sends"] = round((bus.sent - sent) / count, 2)
            per[label]["median_wall_ms"] = _ms(elapsed / count)
            return out

        def request(i: int) -> BookingRequest:
            return BookingRequest(
                providerId="dr-ops", start=free_day[i][0], patientId=f"p-{i}", reason="bench"
            )

        booked = await measure(
            "book",
            10,
            lambda i: service.book(AGENT, request(i), idempotency_key=None, correlation_id="bench-ops-0001"),
        )
        await measure(
            "book_with_idempotency_key",
            10,
            lambda i: service.book(
                AGENT, request(10 + i), idempotency_key=f"key-{i}", correlation_id="bench-ops-0001"
            ),
        )
        await measure(
            "book_replay_same_key",
            10,
            lambda i: service.book(
                AGENT, request(10 + i), idempotency_key=f"key-{i}", correlation_id="bench-ops-0001"
            ),
        )

        async def taken(i: int) -> None:
            with contextlib.suppress(Conflict):
                await service.book(AGENT, request(i), idempotency_key=None, correlation_id="bench-ops-0001")

        await measure("book_taken_slot_409", 10, taken)
        await measure(
            "reschedule",
            10,
            lambda i: service.reschedule(AGENT, booked[i].item["id"], free_day[20 + i][0], "bench-ops-0001"),
        )
        await measure("cancel", 10, lambda i: service.cancel(AGENT, booked[i].item["id"], "bench-ops-0001"))
        result["store_ops_per_command"] = per

        # -- contention ----------------------------------------------------------------------------
        target = free_day[5][0]
        store.counts.clear()
        race_start = time.perf_counter()

        async def attempt(i: int) -> int:
            try:
                await service.book(
                    AGENT,
                    BookingRequest(providerId="dr-ops", start=target, patientId=f"c-{i}", reason="bench"),
                    idempotency_key=None,
                    correlation_id="bench-race-0001",
                )
            except Conflict:
                return 409
            return 201

        outcomes = Counter(await asyncio.gather(*(attempt(i) for i in range(50))))
        result["contention_50_bookings_one_slot"] = {
            "outcomes": {str(k): v for k, v in sorted(outcomes.items())},
            "wall_ms": _ms(time.perf_counter() - race_start),
            "store_ops": {k: v for k, v in store.counts.items() if ":" not in k},
        }
    finally:
        await store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(bench(Path(tmp), args.runs)), indent=2))


if __name__ == "__main__":
    main()
