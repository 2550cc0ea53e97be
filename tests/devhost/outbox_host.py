"""The real dev host (`python -m devhost`: the function app, the embedded store and bus, the outbox
relay among its functions) with three test-only additions, so tests can watch and crash it:

- the `events` topic has one more subscription, `probe` (every subject, sessions on), that the test
  process reads from the same bus file, as any consumer would;
- change-feed leases expire after 2 s instead of 60 s, so a host started after a `kill -9` takes the
  dead host's leases over at once (in Azure a new instance waits out `leaseExpirationInterval`);
- `OUTBOX_HOST_STALL=<container>:<N>[:after]`: the N-th relay batch of that container that holds an
  event document is read from the change feed, then the host prints `stalled <message id> …` and
  hangs before publishing it, so the test's SIGKILL lands after those events were committed and
  before they were published; with `:after`, it hangs after publishing and before the lease is
  checkpointed, so the next host publishes the batch again.

    python -m tests.devhost.outbox_host [python -m devhost arguments]

Hook for the bot callbacks (issue 13 "Reliability"): the kill test in test_outbox_relay.py counts
what `probe` receives; the callbacks consumer's own subscription and its recording bot endpoint
can be checked in the same run after the restart (see the comment there).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.kernel import catalog
from shared.kernel.messages import SubscriptionSpec, TopicSpec, subscription_entity

PROBE = subscription_entity(catalog.EVENTS_TOPIC, "probe")
LEASE_EXPIRATION = timedelta(seconds=2)
QUARTER = LEASE_EXPIRATION / 4


def probe_topics() -> dict[str, TopicSpec]:
    """The catalogue's topics with the `probe` subscription added to `events`, and the bot-callback
    sessions a killed host held free again after 4 s instead of 60 s (the live host renews its
    locks, as the Functions host does)."""
    events = catalog.TOPICS[catalog.EVENTS_TOPIC]
    probe = SubscriptionSpec("probe", "PROBE_SUB", requires_session=True, lock_duration=timedelta(seconds=30))
    subscriptions = tuple(
        replace(s, lock_duration=timedelta(seconds=4)) if s.name == catalog.CALLBACKS_SUBSCRIPTION else s
        for s in events.subscriptions
    )
    return {**catalog.TOPICS, events.name: replace(events, subscriptions=(*subscriptions, probe))}


def _install() -> None:
    import devhost.cli
    from devhost.change_feed import ChangeFeedRunner
    from devhost.discovery import DiscoveredApp

    catalog.TOPICS.update(probe_topics())

    discover = devhost.cli.discover

    def quick_leases(app: Any, environ: Any) -> DiscoveredApp:
        found = discover(app, environ)
        feeds = [
            replace(
                f,
                lease_expiration=LEASE_EXPIRATION,
                lease_renew=LEASE_EXPIRATION / 4,
                lease_acquire=LEASE_EXPIRATION / 4,
            )
            for f in found.change_feeds
        ]
        return replace(found, change_feeds=tuple(feeds))

    devhost.cli.discover = quick_leases

    container, _, point = (os.environ.get("OUTBOX_HOST_STALL") or "").partition(":")
    if not container:
        return
    at, _, when = point.partition(":")
    stall_at = int(at)
    invoke = ChangeFeedRunner._invoke
    batches = 0

    async def stalling(self: ChangeFeedRunner, items: list[dict[str, Any]], retry: int) -> None:
        nonlocal batches
        events = [f"{i['aggregateId']}:{i['version']}.{i['n']}" for i in items if i.get("type") == "event"]
        if events and self.function.container == container:
            batches += 1
            if batches == stall_at:
                if when == "after":
                    await invoke(self, items, retry)
                print("stalled " + " ".join(events), flush=True)
                await asyncio.Event().wait()
        await invoke(self, items, retry)

    ChangeFeedRunner._invoke = stalling  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    from devhost.cli import main

    raise SystemExit(main())
