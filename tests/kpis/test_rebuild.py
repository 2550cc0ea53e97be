"""`python -m ops kpis rebuild` recomputes days from the event history: the same documents the
live consumer made, whatever happened to them since, and nothing outside the range."""

from __future__ import annotations

import asyncio
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ops.cli import main
from shared.kernel.clock import ManualClock
from shared.kpis.api import rebuild
from shared.runtime import Runtime, build_runtime
from tests.conftest import DEV_SECRET, make_settings, registered_functions, stored_items
from tests.history.support import envelope, topic_message
from tests.kpis.sequence import known_day

DAY = date(2026, 3, 2)


async def consume_both(events: list[dict[str, Any]]) -> None:
    functions = registered_functions()
    for name in ("event_history", "kpi_events"):
        handler = functions[name].get_user_function()
        for event in events:
            await handler(topic_message(event))


def hours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hour documents and their marks, without the store's fields."""
    kept = [
        {k: v for k, v in i.items() if not k.startswith("_")}
        for i in items
        if i["type"] in ("kpi-hour", "kpi-mark")
    ]
    return sorted(kept, key=lambda i: (i["partition"], i["id"]))


async def test_a_rebuild_restores_exactly_what_the_consumer_made(runtime: Runtime) -> None:
    other_day = envelope(
        "conversation.waiting", "c-8", 1, "2026-03-03T09:00:00.000Z", queueId="gen", first=True
    )
    await consume_both([*known_day(), other_day])
    made = hours(await stored_items(runtime, "kpis"))
    kpis = runtime.store.container("kpis")
    # Lost, damaged and stray documents in the range; the next day's is left alone.
    await kpis.delete("queue:gen|2026-03-02T10", "queue:gen:2026-03-02")
    damaged = await kpis.read("all|2026-03-02T10", "all:2026-03-02")
    await kpis.replace({**damaged, "buckets": [{"incoming": 99}, {}, {}, {}]})
    stray = {
        **damaged,
        "id": "queue:ghost|2026-03-02T15",
        "partition": "queue:ghost:2026-03-02",
        "scope": "queue:ghost",
    }
    await kpis.create(stray)
    # And so for the marks beside the hours: one lost, one moved back, one stray.
    marks = [i for i in made if i["type"] == "kpi-mark" and i["partition"] == "all:2026-03-02"]
    await kpis.delete(marks[0]["id"], marks[0]["partition"])
    await kpis.replace({**marks[1], "applied": [0, 0]})
    await kpis.create({**marks[1], "id": "mark:2026-03-02T11:c-ghost", "aggregateId": "c-ghost"})
    next_day = await kpis.read("all|2026-03-03T09", "all:2026-03-03")

    done = await rebuild(runtime.store, DAY, DAY, 10, today=date(2026, 3, 20))

    assert hours(await stored_items(runtime, "kpis")) == made
    assert (await kpis.read("all|2026-03-03T09", "all:2026-03-03"))["_etag"] == next_day["_etag"]
    assert done.events == len(known_day()) + 1
    assert done.deleted == 2
    assert done.marks == sum(i["type"] == "kpi-mark" for i in made if i["hour"] < "2026-03-03")


async def test_a_rebuilt_day_takes_later_live_events_once(runtime: Runtime) -> None:
    events = known_day()
    await consume_both(events[:-3])
    await rebuild(runtime.store, DAY, DAY, 10, today=DAY)
    await consume_both(events)  # the rest arrives live, with redeliveries of what came before
    rebuilt = hours(await stored_items(runtime, "kpis"))
    await rebuild(runtime.store, DAY, DAY, 10, today=DAY)
    assert hours(await stored_items(runtime, "kpis")) == rebuilt


def test_the_ops_command_rebuilds_the_dev_hosts_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    env = {"PSC_AUTH_MODE": "dev", "PSC_DEV_JWT_SECRET": DEV_SECRET, "PSC_DATA_DIR": str(data)}
    for name, value in {**env, "PSC_STORE": "embedded", "PSC_BUS": "embedded"}.items():
        monkeypatch.setenv(name, value)

    async def seed() -> list[dict[str, Any]]:
        runtime = await build_runtime(make_settings(data), clock=ManualClock())
        from shared.runtime import use_runtime

        with use_runtime(runtime):
            await consume_both(known_day())
            made = hours(await stored_items(runtime, "kpis"))
            for item in await stored_items(runtime, "kpis"):
                await runtime.store.container("kpis").delete(item["id"], item["partition"])
        await runtime.close()
        return made

    made = asyncio.run(seed())
    out, err = io.StringIO(), io.StringIO()
    assert main(["kpis", "rebuild", "--from", "2026-03-02", "--to", "2026-03-02"], out=out, err=err) == 0, (
        err.getvalue()
    )
    assert "hour documents written with" in out.getvalue()

    async def read() -> list[dict[str, Any]]:
        runtime = await build_runtime(make_settings(data), clock=ManualClock())
        try:
            return hours(await stored_items(runtime, "kpis"))
        finally:
            await runtime.close()

    assert asyncio.run(read()) == made
    assert main(["kpis", "rebuild", "--from", "2026-03-02", "--to", "2026-03-01"], out=out, err=err) == 2
    assert "before --from" in err.getvalue()
