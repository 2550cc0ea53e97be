"""A small dev host for the kill test: the embedded store and bus on DATA_DIR, one change-feed
function (an outbox relay publishing each changed event document to the `events` topic with a
deterministic message id and the aggregate as session), run by the dev host's own discovery and
change-feed runner until killed.

    python -m tests.devhost.relay_host DATA_DIR [KILL_POINT]

KILL_POINT `before-publish:N` or `after-publish:N`: on the N-th invocation, print where it stands
and hang there, so the test can SIGKILL the process exactly between the store commit and the
publication, or between the publication and the lease checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import azure.functions as func

from devhost.change_feed import ChangeFeedRunner
from devhost.discovery import discover
from devhost.invocation import Invoker
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.clock import SystemClock
from shared.kernel.documents import ContainerSpec
from shared.kernel.messages import OutgoingMessage, SubscriptionSpec, TopicSpec

CONTAINERS = {
    spec.name: spec for spec in (ContainerSpec("orders", "/customerId"), ContainerSpec("leases", "/id"))
}
TOPICS = {
    "events": TopicSpec(
        "events",
        "EVENTS_TOPIC",
        duplicate_detection_window=timedelta(minutes=10),
        subscriptions=(SubscriptionSpec("ledger", "LEDGER_SUB", requires_session=True),),
    )
}


def open_store(data_dir: Path) -> SqliteDocumentStore:
    return SqliteDocumentStore(data_dir / "store.sqlite3", CONTAINERS, SystemClock())


def open_bus(data_dir: Path) -> SqliteMessageBus:
    return SqliteMessageBus(data_dir / "bus.sqlite3", {}, SystemClock(), topics=TOPICS)


def relay_app(bus: SqliteMessageBus, kill_point: str | None) -> func.FunctionApp:
    where, _, at = (kill_point or "").partition(":")
    calls = 0
    app = func.FunctionApp()

    @app.retry(strategy="fixed_delay", max_retry_count="-1", delay_interval="00:00:01")
    @app.cosmos_db_trigger(
        arg_name="docs",
        connection="COSMOS",
        database_name="psc",
        container_name="orders",
        lease_container_name="leases",
        max_items_per_invocation=7,
        start_from_beginning=True,
        feed_poll_delay=50,
        lease_expiration_interval=1500,
        lease_renew_interval=500,
        lease_acquire_interval=100,
    )
    async def relay(docs: func.DocumentList) -> None:
        nonlocal calls
        calls += 1
        messages = [
            OutgoingMessage(
                body=json.dumps({"id": doc["id"]}).encode(),
                message_id=doc["id"],  # `<aggregate id>:<version>.<n>`, as the outbox writes it
                subject="order.changed",
                session_id=doc["customerId"],
            )
            for doc in docs
        ]
        if where == "before-publish" and calls == int(at):
            print(f"{where} {docs[0]['id']}", flush=True)
            await asyncio.sleep(3600)
        await bus.send_batch("events", messages)
        if where == "after-publish" and calls == int(at):
            print(f"{where} {docs[0]['id']}", flush=True)
            await asyncio.sleep(3600)

    return app


async def main(data_dir: Path, kill_point: str | None) -> None:
    store, bus = open_store(data_dir), open_bus(data_dir)
    (function,) = discover(relay_app(bus, kill_point), {"COSMOS_DATABASE": "psc"}).change_feeds
    runner = ChangeFeedRunner(function, store, SystemClock(), Invoker())
    print("ready", flush=True)
    await runner.run_forever(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
