"""Redelivery, replay and crashes never change the numbers: any interleaving of the live stream,
a whole replay of the history, redeliveries of messages already handled and invocations that
die half-way (then come again, as a session's failed message does) gives exactly the buckets one
in-order application gives."""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.history.api import parse_envelope
from shared.kernel.clock import ManualClock
from shared.kpis.aggregation import Ledger, StoredLedger, apply_event
from shared.kpis.api import kpi_range
from shared.kpis.documents import Mark, PresenceState
from shared.kpis.sums import Part
from shared.runtime import build_runtime
from tests.conftest import make_settings
from tests.kpis.sequence import known_day

SCOPES = [(None, None), ("gen", None), ("bill", None), (None, "a-1"), (None, "a-2")]
START, END = (
    datetime.fromisoformat("2026-03-02T09:45:00+00:00"),
    datetime.fromisoformat("2026-03-02T13:15:00+00:00"),
)
EVENTS = known_day()


class Crash(Exception):
    pass


class DiesAfter:
    """A ledger whose process dies before its `writes`-th write."""

    def __init__(self, inner: Ledger, writes: int) -> None:
        self.inner, self.left = inner, writes

    def _tick(self) -> None:
        if self.left == 0:
            raise Crash
        self.left -= 1

    async def add(self, scope: str, hour: datetime, aggregate_id: str, mark: Mark, parts: list[Part]) -> bool:
        self._tick()
        return await self.inner.add(scope, hour, aggregate_id, mark, parts)

    async def presence(self, agent_id: str) -> PresenceState | None:
        return await self.inner.presence(agent_id)

    async def save_presence(self, state: PresenceState) -> None:
        self._tick()
        await self.inner.save_presence(state)


async def numbers(schedule: Any) -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = await build_runtime(make_settings(Path(tmp)), clock=ManualClock())
        try:
            await schedule(StoredLedger(runtime.store))
            return [
                await kpi_range(runtime.store, START, END, "15m", queue_id, agent_id)
                for queue_id, agent_id in SCOPES
            ]
        finally:
            await runtime.close()


async def in_order(ledger: StoredLedger) -> None:
    for event in EVENTS:
        await apply_event(ledger, parse_envelope(event), 10)


_REFERENCE: list[Any] = []


async def reference() -> list[Any]:
    if not _REFERENCE:
        _REFERENCE.extend(await numbers(in_order))
    return _REFERENCE


def streams() -> dict[str, list[dict[str, Any]]]:
    by_aggregate: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in EVENTS:
        by_aggregate[event["aggregateId"]].append(event)
    return by_aggregate


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1), redeliver=st.floats(0, 0.5), crash=st.floats(0, 0.3), replay=st.booleans()
)
async def test_any_interleaving_of_redelivery_replay_and_crashes_gives_the_in_order_numbers(
    seed: int, redeliver: float, crash: float, replay: bool
) -> None:
    rnd = random.Random(seed)
    per_aggregate = streams()

    async def schedule(ledger: StoredLedger) -> None:
        # Two in-order streams per aggregate (live, and a replay of the history when drawn),
        # merged at random across aggregates and streams; sessions of different aggregates are
        # independent, so any order between them is possible.
        cursors = {
            (agg, stream): 0
            for agg in per_aggregate
            for stream in (("live", "replay") if replay else ("live",))
        }
        handled: list[dict[str, Any]] = []
        while cursors:
            key = rnd.choice(sorted(cursors))
            event = per_aggregate[key[0]][cursors[key]]
            target: Ledger = DiesAfter(ledger, rnd.randrange(4)) if rnd.random() < crash else ledger
            try:
                await apply_event(target, parse_envelope(event), 10)
            except Crash:
                continue  # the message comes back before the rest of its session
            handled.append(event)
            cursors[key] += 1
            if cursors[key] == len(per_aggregate[key[0]]):
                del cursors[key]
            if rnd.random() < redeliver:
                await apply_event(ledger, parse_envelope(rnd.choice(handled)), 10)

    assert await numbers(schedule) == await reference()


async def test_the_reference_is_not_empty() -> None:
    whole = (await reference())[0]["totals"]
    assert whole["incoming"] == 5
    assert whole["utilization"] is not None
