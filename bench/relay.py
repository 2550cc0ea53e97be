"""The outbox relay's own pace on the embedded store and bus: `--events` event documents (with as
many aggregate documents beside them, which the relay must read past) written across
`--aggregates` conversations, then the registered relay function (`relay_conversation_events`)
run by the dev host's change-feed runner until every event is on the topic.

    python -m bench.relay [--events 20000] [--aggregates 500]

Prints events published per second and the time per change-feed batch (100 changes). The relay
must keep up with what the host writes: flat out, an escalation and its routing write about 3
events (waiting, offered, the agent's presence), so 5,000 routed/min needs about 250 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SETTINGS = {"COSMOS_DATABASE": "psc", "ROUTING_QUEUE": "routing", "PSC_SWEEP_SCHEDULE": "0 */5 * * * *"}


async def run(events: int, aggregates: int) -> None:
    import function_app
    from devhost.change_feed import ChangeFeedRunner
    from devhost.discovery import discover
    from devhost.invocation import Invoker
    from shared.adapters.sqlite_bus import SqliteMessageBus
    from shared.config import Settings
    from shared.kernel.catalog import QUEUES, TOPICS
    from shared.kernel.clock import SystemClock
    from shared.kernel.documents import ChangeFeed
    from shared.kernel.messages import SubscriptionSpec
    from shared.runtime import build_runtime

    app = SimpleNamespace(get_functions=function_app.app.get_functions)
    (relay,) = [f for f in discover(app, SETTINGS).change_feeds if f.container == "conversations"]
    relay = dataclasses.replace(relay, start_from_beginning=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(PSC_AUTH_MODE="dev", PSC_DEV_JWT_SECRET="x" * 40, PSC_DATA_DIR=tmp)
        plain = await build_runtime(settings, clock=SystemClock())
        # One subscription, so every message is really stored (a topic without one drops them).
        events_topic = TOPICS["events"]
        sub = SubscriptionSpec("bench", "BENCH_SUB", requires_session=True)
        topics = {**TOPICS, "events": dataclasses.replace(events_topic, subscriptions=(sub,))}
        bus = SqliteMessageBus(Path(tmp) / "bus-bench.sqlite3", QUEUES, SystemClock(), topics=topics)
        runtime = dataclasses.replace(plain, bus=bus)
        container = runtime.store.container("conversations")
        per = max(1, events // aggregates)
        for a in range(aggregates):
            cid = f"c-{a:05d}"
            for version in range(1, per + 1):
                await container.upsert(
                    {"id": cid, "conversationId": cid, "type": "conversation", "version": version}
                )
                await container.create(event(cid, version))
        timings: list[float] = []
        store = runtime.store
        assert isinstance(store, ChangeFeed)  # the embedded store reads its change feed
        feed = ChangeFeedRunner(relay, store, runtime.clock, Invoker(runtime))
        t0 = time.perf_counter()
        while True:
            t = time.perf_counter()
            if not await feed.poll_once():
                break
            timings.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
        published = feed.stats.items
        await bus.close()
        await plain.close()
    total = aggregates * per
    print(f"{total} events in {aggregates} conversations ({published} changes read, aggregates included)")
    print(
        f"relay: {total / wall:8.0f} events/s   batch of {relay.max_items} changes: "
        f"p50 {statistics.median(timings) * 1000:.1f} ms   max {max(timings) * 1000:.1f} ms"
    )


def event(cid: str, version: int) -> dict[str, Any]:
    return {
        "id": f"evt:{version}.1",
        "type": "event",
        "eventType": "conversation.message",
        "aggregateId": cid,
        "version": version,
        "n": 1,
        "at": "2026-01-05T09:00:00.000Z",
        "data": {"seq": version, "visibility": "patient", "from": {"role": "patient", "id": "p-1"}},
        "ttl": 1209600,
        "conversationId": cid,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--aggregates", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.aggregates))


if __name__ == "__main__":
    main()
