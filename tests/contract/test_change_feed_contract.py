"""The change-feed contract (Cosmos DB's latest-version mode): what a change-feed trigger can rely
on. Runs on every store that offers a `ChangeFeed`; in Azure the Functions Cosmos DB trigger reads
Cosmos DB's own change feed, so the Cosmos adapter has no reader and skips."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.kernel.documents import BatchOperation, ChangeFeed, Item
from shared.kernel.errors import BadRequest
from tests.contract.conftest import StoreHarness


def feed_of(harness: StoreHarness) -> ChangeFeed:
    if not isinstance(harness.store, ChangeFeed):
        pytest.skip(
            f"the {harness.name} store has no change-feed reader (the Functions trigger reads it in Azure)"
        )
    return harness.store


async def read_all(
    feed: ChangeFeed, container: str, after: str | None, page: int = 100
) -> tuple[list[Item], str]:
    items: list[Item] = []
    while True:
        batch = await feed.read_changes(container, after=after, max_items=page)
        items += batch.items
        after = batch.continuation
        if len(batch.items) < page:
            return items, after


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def test_changes_come_in_the_order_they_were_written_with_increasing_positions(
    store_harness: StoreHarness,
) -> None:
    feed = feed_of(store_harness)
    things = store_harness.store.container("things")
    start = await feed.change_feed_position("things")
    t1, t2 = tenant(), tenant()
    for name, key in (("a", t1), ("b", t2), ("c", t1)):
        await things.create({"id": name, "tenant": key, "n": 1})

    items, _ = await read_all(feed, "things", start)

    assert [(i["id"], i["tenant"]) for i in items] == [("a", t1), ("b", t2), ("c", t1)]
    positions = [i["_lsn"] for i in items]
    assert positions == sorted(positions)
    assert all("_etag" in i and "_ts" in i for i in items)


async def test_an_item_changed_twice_between_reads_appears_once_at_its_latest_version(
    store_harness: StoreHarness,
) -> None:
    feed = feed_of(store_harness)
    things = store_harness.store.container("things")
    key = tenant()
    start = await feed.change_feed_position("things")
    created = await things.create({"id": "x", "tenant": key, "n": 1})
    await things.create({"id": "y", "tenant": key, "n": 1})
    await things.replace({**created, "n": 2}, etag=created["_etag"])

    items, position = await read_all(feed, "things", start)
    await things.upsert({"id": "y", "tenant": key, "n": 5})
    later, _ = await read_all(feed, "things", position)

    assert [(i["id"], i["n"]) for i in items] == [("y", 1), ("x", 2)]
    assert [(i["id"], i["n"]) for i in later] == [("y", 5)]


async def test_deletes_and_expiries_never_appear(store_harness: StoreHarness) -> None:
    feed = feed_of(store_harness)
    things = store_harness.store.container("things")
    short_lived = store_harness.store.container("short_lived")
    key = tenant()
    start_things = await feed.change_feed_position("things")
    start_short = await feed.change_feed_position("short_lived")
    await things.create({"id": "gone", "tenant": key})
    await things.create({"id": "kept", "tenant": key})
    await things.delete("gone", key)
    await short_lived.create({"id": "brief", "tenant": key})
    await short_lived.create({"id": "lasting", "tenant": key, "ttl": 3600})

    await store_harness.advance(4)

    assert [i["id"] for i in (await read_all(feed, "things", start_things))[0]] == ["kept"]
    assert [i["id"] for i in (await read_all(feed, "short_lived", start_short))[0]] == ["lasting"]


async def test_pages_resume_exactly_where_the_last_one_ended(store_harness: StoreHarness) -> None:
    feed = feed_of(store_harness)
    things = store_harness.store.container("things")
    key = tenant()
    start = await feed.change_feed_position("things")
    for n in range(7):
        await things.create({"id": f"p{n}", "tenant": key})

    first = await feed.read_changes("things", after=start, max_items=3)
    second = await feed.read_changes("things", after=first.continuation, max_items=3)
    third = await feed.read_changes("things", after=second.continuation, max_items=3)
    empty = await feed.read_changes("things", after=third.continuation, max_items=3)

    pages = [[i["id"] for i in batch.items] for batch in (first, second, third, empty)]
    assert pages == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6"], []]
    assert empty.continuation == third.continuation


async def test_a_new_reader_from_the_beginning_sees_every_living_item_once(
    store_harness: StoreHarness,
) -> None:
    feed = feed_of(store_harness)
    expiring = store_harness.store.container("expiring")
    key = tenant()
    for n in range(3):
        await expiring.upsert({"id": f"e{n}", "tenant": key, "n": n})
    await expiring.upsert({"id": "e0", "tenant": key, "n": 10})

    items, _ = await read_all(feed, "expiring", None)

    mine = [(i["id"], i["n"]) for i in items if i["tenant"] == key]
    assert mine == [("e1", 1), ("e2", 2), ("e0", 10)]


async def test_a_transactional_batch_appears_in_its_operations_order(store_harness: StoreHarness) -> None:
    feed = feed_of(store_harness)
    things = store_harness.store.container("things")
    key = tenant()
    start = await feed.change_feed_position("things")

    await things.batch(
        key,
        [
            BatchOperation.create({"id": "order", "tenant": key, "version": 1}),
            BatchOperation.create({"id": "order:1.0", "tenant": key, "type": "order.placed"}),
            BatchOperation.create({"id": "order:1.1", "tenant": key, "type": "order.paid"}),
        ],
    )

    items, _ = await read_all(feed, "things", start)
    assert [i["id"] for i in items] == ["order", "order:1.0", "order:1.1"]


async def test_a_continuation_of_another_container_or_garbage_is_a_bad_request(
    store_harness: StoreHarness,
) -> None:
    feed = feed_of(store_harness)
    other = await feed.change_feed_position("expiring")

    with pytest.raises(BadRequest):
        await feed.read_changes("things", after=other)
    with pytest.raises(BadRequest):
        await feed.read_changes("things", after="not-a-token")
    with pytest.raises(KeyError):
        await feed.read_changes("nope")


async def test_a_reader_racing_writers_sees_every_final_version(store_harness: StoreHarness) -> None:
    feed = feed_of(store_harness)
    things = store_harness.store.container("things")
    key = tenant()
    start = await feed.change_feed_position("things")
    writes_done = asyncio.Event()
    seen: dict[str, int] = {}

    async def writer(offset: int) -> None:
        for n in range(30):
            await things.upsert({"id": f"w{(n + offset) % 10}", "tenant": key, "n": n})
            await asyncio.sleep(0)

    async def reader() -> None:
        position = start
        while True:
            done = writes_done.is_set()
            batch = await feed.read_changes("things", after=position, max_items=7)
            for item in batch.items:
                seen[item["id"]] = item["n"]
            position = batch.continuation
            if done and not batch.items:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.gather(writer(0), writer(5))
    writes_done.set()
    await reading

    final = {item["id"]: item["n"] for item in (await read_all(feed, "things", start))[0]}
    assert seen == final
    assert len(final) == 10
