"""Cosmos DB triggers fed from the embedded store's change feed, with Azure's semantics: a lease per
function, batches as `func.DocumentList`, and above all the failure rule: a batch whose function
raises is skipped unless the function has a retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.change_feed import ChangeFeedRunner
from devhost.discovery import ChangeFeedFunction
from devhost.errors import StartError
from devhost.host import DevHost
from devhost.invocation import Invoker
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.clock import ManualClock
from shared.kernel.documents import ContainerSpec
from tests.devhost.conftest import discovered, new_app

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CONTAINERS = {
    spec.name: spec
    for spec in (
        ContainerSpec("orders", "/customerId"),
        ContainerSpec("leases", "/id"),
        ContainerSpec("bad", "/pk"),
    )
}
ENV = {"COSMOS_DATABASE": "psc", "ORDERS": "orders"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteDocumentStore]:
    store = SqliteDocumentStore(tmp_path / "store.sqlite3", CONTAINERS, clock)
    yield store
    await store.close()


class Relay:
    """A change-feed function that records what it got, and fails while told to."""

    def __init__(self) -> None:
        self.batches: list[func.DocumentList] = []
        self.retry_counts: list[int] = []
        self.failures_left = 0

    def app(self, retry: dict[str, str] | None = None, **trigger: Any) -> func.FunctionApp:
        app = new_app()
        options = {
            "max_items_per_invocation": 3,
            "start_from_beginning": True,
            "lease_container_name": "leases",
            "database_name": "%COSMOS_DATABASE%",
            **trigger,
        }

        def with_retry(function: Any) -> Any:
            return app.retry(**retry)(function) if retry else function

        @with_retry
        @app.cosmos_db_trigger(
            arg_name="docs",
            connection="COSMOS",
            container_name="%ORDERS%",
            lease_container_prefix="relay-",
            **options,
        )
        async def relay(docs: func.DocumentList, context: func.Context) -> None:
            self.batches.append(docs)
            self.retry_counts.append(context.retry_context.retry_count)
            if self.failures_left:
                self.failures_left -= 1
                raise RuntimeError("the topic is down")

        return app

    def function(self, retry: dict[str, str] | None = None, **trigger: Any) -> ChangeFeedFunction:
        (function,) = discovered(self.app(retry, **trigger), ENV).change_feeds
        return function

    def ids(self) -> list[list[str]]:
        return [[doc["id"] for doc in batch] for batch in self.batches]


def runner(
    relay: Relay,
    store: SqliteDocumentStore,
    clock: ManualClock,
    retry: dict[str, str] | None = None,
    **kw: Any,
) -> ChangeFeedRunner:
    owner = kw.pop("owner", None)
    return ChangeFeedRunner(relay.function(retry, **kw), store, clock, Invoker(), owner=owner)


async def write(store: SqliteDocumentStore, *ids: str) -> None:
    for item_id in ids:
        await store.container("orders").upsert({"id": item_id, "customerId": "c1", "total": 1})


async def test_changes_arrive_as_a_document_list_in_batches_of_max_items(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    relay = Relay()
    feed = runner(relay, store, clock)
    await write(store, "o1", "o2", "o3", "o4")

    assert await feed.poll_once() == 3
    assert await feed.poll_once() == 1
    assert await feed.poll_once() == 0

    assert relay.ids() == [["o1", "o2", "o3"], ["o4"]]
    batch = relay.batches[0]
    assert isinstance(batch, func.DocumentList)
    assert isinstance(batch[0], func.Document)
    assert batch[0]["customerId"] == "c1"
    assert "_lsn" in batch[0]
    assert "_etag" in batch[0]


async def test_a_new_lease_starts_now_unless_told_to_start_from_the_beginning(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    await write(store, "old")
    relay = Relay()
    feed = runner(relay, store, clock, start_from_beginning=False)

    assert await feed.poll_once() == 0  # creates the lease at "now"
    await write(store, "new")
    assert await feed.poll_once() == 1

    assert relay.ids() == [["new"]]
    lease = await store.container("leases").read("relay-psc.orders", "relay-psc.orders")
    assert lease["owner"] == feed.owner


async def test_without_a_retry_policy_a_failed_batch_is_skipped_as_in_azure(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    relay = Relay()
    relay.failures_left = 1
    feed = runner(relay, store, clock)
    await write(store, "o1", "o2", "o3", "o4")

    await feed.poll_once()
    await feed.poll_once()

    assert relay.ids() == [["o1", "o2", "o3"], ["o4"]]  # o1-o3 never come again
    assert feed.stats.skipped_batches == 1


async def test_with_a_retry_policy_the_same_batch_is_retried_until_it_succeeds(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    relay = Relay()
    relay.failures_left = 2
    feed = runner(
        relay,
        store,
        clock,
        retry={"strategy": "fixed_delay", "max_retry_count": "5", "delay_interval": "00:00:02"},
    )
    await write(store, "o1", "o2")
    before = clock.now()

    assert await feed.poll_once() == 2

    assert relay.ids() == [["o1", "o2"]] * 3
    assert relay.retry_counts == [0, 1, 2]
    assert clock.now() - before == timedelta(seconds=4)
    assert feed.stats.skipped_batches == 0
    assert await feed.poll_once() == 0


async def test_once_the_retries_are_used_up_the_batch_is_skipped(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    relay = Relay()
    relay.failures_left = 10
    feed = runner(
        relay,
        store,
        clock,
        retry={
            "strategy": "exponential_backoff",
            "max_retry_count": "2",
            "minimum_interval": "00:00:01",
            "maximum_interval": "00:00:03",
        },
    )
    await write(store, "o1")
    before = clock.now()

    await feed.poll_once()
    await write(store, "o2")
    relay.failures_left = 0
    await feed.poll_once()

    assert relay.ids() == [["o1"], ["o1"], ["o1"], ["o2"]]
    assert clock.now() - before == timedelta(seconds=1 + 2)
    assert feed.stats.skipped_batches == 1


async def test_a_host_stopped_during_endless_retries_checkpoints_nothing_so_the_batch_comes_again(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    relay = Relay()
    relay.failures_left = 10
    retry = {"strategy": "fixed_delay", "max_retry_count": "-1", "delay_interval": "00:00:01"}
    stop = asyncio.Event()
    first = runner(relay, store, clock, retry=retry)
    await write(store, "o1")

    task = asyncio.create_task(first.poll_once(stop))
    while len(relay.batches) < 5:
        await asyncio.sleep(0)
    stop.set()
    assert await task == 0
    await first.stop()

    relay.failures_left = 0
    again = runner(relay, store, clock, retry=retry)
    assert await again.poll_once() == 1
    assert relay.ids()[-1] == ["o1"]


async def test_a_lease_held_by_a_live_host_is_not_taken_but_an_expired_one_is(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    first_relay, second_relay = Relay(), Relay()
    first = runner(first_relay, store, clock, owner="host-1", lease_expiration_interval=10_000)
    second = runner(second_relay, store, clock, owner="host-2", lease_expiration_interval=10_000)
    await write(store, "o1")
    assert await first.poll_once() == 1

    await write(store, "o2")
    assert await second.poll_once() == 0  # host-1 renewed it just now
    clock.advance(11)  # host-1 has gone quiet past the expiry
    assert await second.poll_once() == 1
    assert await first.poll_once() == 0  # its checkpoint would fail now: it lost the lease

    assert first_relay.ids() == [["o1"]]
    assert second_relay.ids() == [["o2"]]
    assert second.stats.leases_acquired == 1


async def test_a_host_that_stops_gives_its_lease_up_at_once(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    first = runner(Relay(), store, clock, owner="host-1")
    second_relay = Relay()
    second = runner(second_relay, store, clock, owner="host-2")
    await write(store, "o1")
    await first.poll_once()
    await first.stop()

    await write(store, "o2")
    assert await second.poll_once() == 1
    assert second_relay.ids() == [["o2"]]


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"create_lease_container_if_not_exists": True}, "create_lease_container_if_not_exists"),
        ({"start_from_time": "2026-01-01T00:00:00Z"}, "start_from_time"),
        ({"max_items_per_invocation": 0}, "max_items_per_invocation"),
        ({"feed_poll_delay": -5}, "feed_poll_delay"),
    ],
)
def test_trigger_options_azure_would_refuse_fail_at_start(trigger: dict[str, Any], message: str) -> None:
    with pytest.raises(StartError, match=message):
        Relay().function(**trigger)


def test_a_database_other_than_the_apps_fails_at_start() -> None:
    with pytest.raises(StartError, match="COSMOS_DATABASE"):
        Relay().function(database_name="sales")


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ({"strategy": "linear", "max_retry_count": "3"}, "strategy"),
        ({"strategy": "fixed_delay", "max_retry_count": "3"}, "00:00:05"),
        ({"strategy": "fixed_delay", "max_retry_count": "-2", "delay_interval": "00:00:01"}, "-1 or more"),
    ],
)
def test_a_retry_policy_the_host_would_refuse_fails_at_start(retry: dict[str, str], message: str) -> None:
    with pytest.raises(StartError, match=message):
        Relay().function(retry)


def test_the_defaults_are_the_extensions() -> None:
    function = Relay().function(max_items_per_invocation=None, start_from_beginning=None)

    assert function.poll_delay == timedelta(seconds=5)
    assert function.lease_expiration == timedelta(seconds=60)
    assert function.max_items == 100
    assert function.start_from_beginning is False
    assert function.lease_id == "relay-psc.orders"


async def test_containers_the_store_does_not_know_fail_at_start(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    app = discovered(Relay().app(lease_container_name="bad"), {**ENV, "ORDERS": "ordres"})
    host = DevHost(app, clock=clock, invoker=Invoker(), receiver=None, store=store)

    with pytest.raises(StartError) as raised:
        await host.check_change_feeds()

    assert "'ordres' is not in the catalogue" in str(raised.value)
    assert "'bad' must be partitioned by /id" in str(raised.value)


async def test_the_banner_names_the_container_lease_poll_delay_and_failure_rule(
    store: SqliteDocumentStore, clock: ManualClock
) -> None:
    host = DevHost(discovered(Relay().app(), ENV), clock=clock, invoker=Invoker(), receiver=None, store=store)

    banner = host.banner("http://127.0.0.1:7071")

    assert (
        "relay: cosmosDBTrigger (container 'orders', lease leases/relay-psc.orders, polls every 5000 ms"
        in banner
    )
    assert "no retry policy: a failed batch is skipped" in banner
    unserved = DevHost(discovered(Relay().app(), ENV), clock=clock, invoker=Invoker(), receiver=None)
    assert "NOT RUN" in unserved.banner("http://127.0.0.1:7071")
