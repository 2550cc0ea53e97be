"""Embedded-store promises beyond the port contract: durability, several instances and processes on
one file, lazy TTL purging, cheap construction, and the guard rails that keep it as strict as Cosmos."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.clock import ManualClock
from shared.kernel.documents import (
    BatchFailed,
    BatchOperation,
    Container,
    ContainerSpec,
    DocumentStore,
    Query,
    where,
)
from shared.kernel.errors import BadRequest, Conflict, PayloadTooLarge, PreconditionFailed, Unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]

CONTAINERS = {
    spec.name: spec
    for spec in (
        ContainerSpec("things", "/tenant"),
        ContainerSpec("short_lived", "/tenant", default_ttl=10),
        ContainerSpec("nested", "/owner/id"),
    )
}

StoreFactory = Callable[..., SqliteDocumentStore]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def open_store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[StoreFactory]:
    """Opens stores on one file (as separate function instances would) and closes them all after."""
    stores: list[SqliteDocumentStore] = []

    def factory(
        path: Path | None = None, busy_timeout: timedelta = timedelta(seconds=30)
    ) -> SqliteDocumentStore:
        store = SqliteDocumentStore(
            path or tmp_path / "store.sqlite3", CONTAINERS, clock, busy_timeout=busy_timeout
        )
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.close()


@pytest.fixture
def things(open_store: StoreFactory) -> Container:
    return open_store().container("things")


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM documents").fetchone()
    return int(count)


# ---- lifecycle -----------------------------------------------------------------------------------


async def test_the_store_implements_the_port(open_store: StoreFactory) -> None:
    store = open_store()
    assert isinstance(store, DocumentStore)
    assert isinstance(store.container("things"), Container)


async def test_constructing_the_store_touches_no_file(tmp_path: Path, open_store: StoreFactory) -> None:
    path = tmp_path / "not" / "yet" / "store.sqlite3"
    store = open_store(path)
    store.container("things")
    assert not path.parent.exists()
    await store.ping()
    assert path.exists()


async def test_data_survives_closing_and_reopening_the_file(open_store: StoreFactory) -> None:
    first = open_store()
    created = await first.container("things").create({"id": "a", "tenant": "t", "v": 1})
    await first.close()
    await first.close()  # idempotent
    with pytest.raises(Unavailable):
        await first.container("things").read("a", "t")

    reopened = open_store()
    read = await reopened.container("things").read("a", "t")
    assert read == created


async def test_two_instances_on_one_file_share_items_and_etags(open_store: StoreFactory) -> None:
    one = open_store().container("things")
    two = open_store().container("things")
    created = await one.create({"id": "a", "tenant": "t", "v": 1})
    seen_by_two = await two.read("a", "t")
    assert seen_by_two == created
    with pytest.raises(Conflict):
        await two.create({"id": "a", "tenant": "t"})

    await two.replace({**seen_by_two, "v": 2}, etag=seen_by_two["_etag"])
    with pytest.raises(PreconditionFailed):
        await one.replace({**created, "v": 3}, etag=created["_etag"])
    assert (await one.read("a", "t"))["v"] == 2


WORKER = """
import asyncio, sys, time
from pathlib import Path
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.errors import PreconditionFailed
from shared.kernel.clock import SystemClock
from shared.kernel.documents import ContainerSpec

async def main(path: str, increments: int, ready: str, go: str) -> None:
    store = SqliteDocumentStore(Path(path), {"things": ContainerSpec("things", "/tenant")}, SystemClock())
    container = store.container("things")
    await store.ping()
    Path(ready).touch()
    while not Path(go).exists():  # start together, so the processes really contend
        time.sleep(0.005)
    conflicts = 0
    try:
        for _ in range(increments):
            while True:
                current = await container.read("counter", "t")
                try:
                    await container.replace({**current, "count": current["count"] + 1}, etag=current["_etag"])
                    break
                except PreconditionFailed:
                    conflicts += 1
    finally:
        await store.close()
    print(conflicts)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
"""


async def test_processes_sharing_the_file_lose_no_increment(tmp_path: Path, open_store: StoreFactory) -> None:
    path = tmp_path / "shared.sqlite3"
    store = open_store(path)
    await store.container("things").create({"id": "counter", "tenant": "t", "count": 0})
    # Enough increments that the processes overlap even when one wakes a few milliseconds late.
    processes, increments = 4, 300
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(increments), str(tmp_path / f"ready{n}"), str(go)],
            cwd=REPO_ROOT,
            env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready{n}").exists() for n in range(processes)):
        assert all(worker.poll() is None for worker in workers), "a worker died while starting"
        assert time.monotonic() < deadline, "workers did not start"
        await asyncio.sleep(0.01)
    go.touch()
    outputs = [await asyncio.to_thread(worker.communicate, timeout=60) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    assert (await store.container("things").read("counter", "t"))["count"] == processes * increments
    # The processes really raced: some replaces lost on a stale ETag and were retried.
    assert sum(int(stdout) for stdout, _ in outputs) > 0


async def test_a_locked_file_is_unavailable_then_recovers(tmp_path: Path, open_store: StoreFactory) -> None:
    path = tmp_path / "store.sqlite3"
    store = open_store(path, busy_timeout=timedelta(milliseconds=100))
    container = store.container("things")
    await store.ping()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock for too long
        with pytest.raises(Unavailable):
            await container.create({"id": "a", "tenant": "t"})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await container.create({"id": "a", "tenant": "t"})


async def test_a_file_that_is_not_a_database_is_unavailable_until_repaired(
    tmp_path: Path, open_store: StoreFactory
) -> None:
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"this is not a database, just some text " * 200)
    store = open_store(path)
    with pytest.raises(Unavailable):
        await store.ping()
    path.unlink()  # ops repair the file: the same store instance works again
    await store.ping()


async def test_an_unreachable_folder_is_unavailable(tmp_path: Path, open_store: StoreFactory) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(Unavailable):
        await open_store(blocker / "store.sqlite3").ping()


# ---- TTL purging ---------------------------------------------------------------------------------


async def test_expired_items_are_purged_by_later_writes(
    tmp_path: Path, open_store: StoreFactory, clock: ManualClock
) -> None:
    container = open_store().container("short_lived")
    for index in range(5):
        await container.create({"id": f"old{index}", "tenant": "t"})
    clock.advance(11)
    assert count_rows(tmp_path / "store.sqlite3") == 5  # invisible already, still on disk
    await container.create({"id": "new", "tenant": "t"})
    assert count_rows(tmp_path / "store.sqlite3") == 1


async def test_purge_expired_removes_every_expired_item(
    tmp_path: Path, open_store: StoreFactory, clock: ManualClock
) -> None:
    store = open_store()
    container = store.container("short_lived")
    await container.create({"id": "brief", "tenant": "t"})
    await container.create({"id": "forever", "tenant": "t", "ttl": -1})
    clock.advance(10)  # expiry is exclusive: at _ts + ttl the item is gone
    assert await store.purge_expired() == 1
    assert count_rows(tmp_path / "store.sqlite3") == 1
    assert (await container.read("forever", "t"))["id"] == "forever"


async def test_turning_ttl_off_stops_expiry(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "store.sqlite3"
    with_ttl = SqliteDocumentStore(path, CONTAINERS, clock)
    await with_ttl.container("short_lived").create({"id": "a", "tenant": "t"})
    await with_ttl.close()
    clock.advance(60)
    ttl_off = {"short_lived": ContainerSpec("short_lived", "/tenant")}
    without_ttl = SqliteDocumentStore(path, ttl_off, clock)
    try:
        assert (await without_ttl.container("short_lived").read("a", "t"))["id"] == "a"
        assert await without_ttl.purge_expired() == 0
    finally:
        await without_ttl.close()


# ---- guard rails ---------------------------------------------------------------------------------


@pytest.mark.parametrize("default_ttl", [0, -5])
def test_a_container_default_ttl_cosmos_would_refuse_is_refused(tmp_path: Path, default_ttl: int) -> None:
    with pytest.raises(ValueError, match="default_ttl"):
        SqliteDocumentStore(
            tmp_path / "s.sqlite3",
            {"x": ContainerSpec("x", "/tenant", default_ttl=default_ttl)},
            ManualClock(),
        )


async def test_an_item_without_its_partition_key_is_a_programming_error(open_store: StoreFactory) -> None:
    store = open_store()
    with pytest.raises(ValueError, match="partition key"):
        await store.container("things").create({"id": "a"})
    with pytest.raises(ValueError, match="partition key"):
        await store.container("nested").create({"id": "a", "owner": {"name": "x"}})
    with pytest.raises(ValueError, match="partition key"):
        await store.container("nested").upsert({"id": "a", "owner": "not-an-object"})


@pytest.mark.parametrize("bad_id", ["", "a/b", "a?b", "a#b", "a\\b", "x" * 256, 7, None])
async def test_ids_that_cosmos_would_refuse_are_refused(things: Container, bad_id: object) -> None:
    with pytest.raises(ValueError, match="id"):
        await things.create({"id": bad_id, "tenant": "t"})


@pytest.mark.parametrize("ttl", [0, -2, 1.5, "10", True])
async def test_an_invalid_item_ttl_is_refused_when_ttl_is_on(open_store: StoreFactory, ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await open_store().container("short_lived").create({"id": "a", "tenant": "t", "ttl": ttl})


async def test_an_item_over_two_megabytes_is_refused(things: Container) -> None:
    with pytest.raises(PayloadTooLarge):
        await things.create({"id": "big", "tenant": "t", "blob": "x" * (2 * 1024 * 1024)})


async def test_system_fields_from_a_read_item_are_replaced_not_stored(things: Container) -> None:
    created = await things.create({"id": "a", "tenant": "t"})
    echoed = {**created, "_rid": "abc==", "_self": "dbs/x", "_ts": 1, "v": 2}
    replaced = await things.replace(echoed, etag=created["_etag"])
    assert "_rid" not in replaced
    assert "_self" not in replaced
    assert replaced["_ts"] == created["_ts"]
    assert replaced["_etag"] != created["_etag"]
    assert await things.read("a", "t") == replaced


async def test_returned_items_are_independent_of_the_callers_objects(things: Container) -> None:
    tags = ["x"]
    item = {"id": "a", "tenant": "t", "tags": tags}
    created = await things.create(item)
    tags.append("y")
    created["tags"].append("z")
    assert "_etag" not in item
    assert (await things.read("a", "t"))["tags"] == ["x"]


async def test_query_values_must_be_json_scalars(things: Container) -> None:
    for condition in (
        where("v", "=", {"a": 1}),
        where("v", "in", [[1]]),
        where("v", "<", float("nan")),
        where("v", ">", datetime(2026, 1, 1, tzinfo=UTC)),
        where("v", "contains", b"bytes"),
    ):
        with pytest.raises(ValueError, match="query values"):
            await things.query(Query((condition,)), partition_key="t")


async def test_max_items_must_be_positive(things: Container) -> None:
    with pytest.raises(ValueError, match="max_items"):
        await things.query(Query(), partition_key="t", max_items=0)


async def test_a_batch_item_of_another_partition_fails_as_a_bad_request(things: Container) -> None:
    with pytest.raises(BatchFailed) as failed:
        await things.batch("t", [BatchOperation.create({"id": "a", "tenant": "other"})])
    assert failed.value.index == 0
    assert isinstance(failed.value.error, BadRequest)


async def test_an_empty_batch_changes_nothing(things: Container) -> None:
    assert await things.batch("t", []) == []


# ---- paging and ordering -------------------------------------------------------------------------


def _b64(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "e30",
        "bm90IGpzb24",
        "",
        _b64("[" * 1000 + "]" * 1000),  # nested 1,000 deep: was a RecursionError
        _b64('{"v":1,"q":"x","k":' + "[" * 100 + "]" * 100 + "}"),
        _b64('{"v":1,"v":1,"q":"x","k":[]}'),  # a key twice
    ],
)
async def test_a_malformed_continuation_token_is_a_bad_request(things: Container, token: str) -> None:
    with pytest.raises(BadRequest):
        await things.query(Query(), partition_key="t", continuation=token)


async def test_a_continuation_token_only_fits_its_own_query(things: Container) -> None:
    for index in range(3):
        await things.create({"id": f"i{index}", "tenant": "t", "v": index})
    page = await things.query(Query(), partition_key="t", max_items=1)
    assert page.continuation is not None
    with pytest.raises(BadRequest):
        await things.query(Query(order_by=(("v", False),)), partition_key="t", continuation=page.continuation)
    with pytest.raises(BadRequest):
        await things.query(Query(), partition_key="other", continuation=page.continuation)
    with pytest.raises(BadRequest):
        await things.query_cross_partition(Query(), continuation=page.continuation)


async def test_the_last_page_carries_no_continuation(things: Container) -> None:
    for index in range(4):
        await things.create({"id": f"i{index}", "tenant": "t"})
    first = await things.query(Query(), partition_key="t", max_items=2)
    second = await things.query(Query(), partition_key="t", max_items=2, continuation=first.continuation)
    assert [item["id"] for item in first.items + second.items] == ["i0", "i1", "i2", "i3"]
    assert second.continuation is None


async def test_paging_neither_skips_nor_repeats_items_when_others_change(things: Container) -> None:
    for index in range(10):
        await things.create({"id": f"i{index}", "tenant": "t", "rank": index})
    query = Query(order_by=(("rank", False),))
    first = await things.query(query, partition_key="t", max_items=4)
    # Between pages: an item already seen is deleted, a new one lands before the cursor.
    await things.delete("i0", "t")
    await things.create({"id": "early", "tenant": "t", "rank": -1})
    rest = await things.query(query, partition_key="t", max_items=100, continuation=first.continuation)
    seen = [item["id"] for item in first.items + rest.items]
    assert seen == [f"i{index}" for index in range(10)]


async def test_mixed_types_sort_undefined_first_then_null_bool_number_string(things: Container) -> None:
    values = {"str": "a", "num": 1, "true": True, "false": False, "null": None, "arr": [1], "obj": {"a": 1}}
    for item_id, value in values.items():
        await things.create({"id": item_id, "tenant": "t", "v": value})
    await things.create({"id": "none", "tenant": "t"})
    ascending = await things.query(Query(order_by=(("v", False),)), partition_key="t")
    order = ["none", "null", "false", "true", "num", "str", "arr", "obj"]
    assert [item["id"] for item in ascending.items] == order
    descending = await things.query(Query(order_by=(("v", True),)), partition_key="t")
    assert [item["id"] for item in descending.items] == order[::-1]


async def test_many_concurrent_tasks_share_one_store(things: Container) -> None:
    await asyncio.gather(*(things.create({"id": f"i{index}", "tenant": "t"}) for index in range(200)))
    page = await things.query(Query(), partition_key="t", max_items=1000)
    assert len(page.items) == 200
