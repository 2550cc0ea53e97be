"""The document-store contract: what every backend (embedded SQLite, Cosmos DB) promises.

Only the port API and `harness.advance` are used, and every test writes under fresh ids and
partition keys, so the suite runs unchanged against a shared Cosmos DB account.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.kernel.documents import (
    MAX_BATCH_OPERATIONS,
    BatchFailed,
    BatchOperation,
    Container,
    DocumentStore,
    Item,
    Page,
    Query,
    UnpageableQuery,
    where,
)
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from tests.contract.conftest import StoreHarness


def fresh(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def things(harness: StoreHarness) -> Container:
    return harness.store.container("things")


def ids(items: list[Item]) -> list[str]:
    return [item["id"] for item in items]


async def all_pages(fetch: Callable[[str | None], Awaitable[Page]]) -> tuple[list[Item], int]:
    """Follow continuations to the end; returns the items and how many pages it took."""
    items: list[Item] = []
    pages = 0
    continuation: str | None = None
    while True:
        page = await fetch(continuation)
        pages += 1
        items.extend(page.items)
        continuation = page.continuation
        if continuation is None:
            return items, pages


EVERYTHING = Query()


async def partition_ids(container: Container, tenant: str, query: Query = EVERYTHING) -> list[str]:
    items, _ = await all_pages(lambda c: container.query(query, partition_key=tenant, continuation=c))
    return ids(items)


# ---- point operations ----------------------------------------------------------------------------


async def test_the_store_answers_ping(store_harness: StoreHarness) -> None:
    assert isinstance(store_harness.store, DocumentStore)
    await store_harness.store.ping()


async def test_an_unknown_container_is_a_key_error(store_harness: StoreHarness) -> None:
    with pytest.raises(KeyError):
        store_harness.store.container("no_such_container")


async def test_create_returns_the_item_with_an_etag_and_a_timestamp(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    assert isinstance(container, Container)
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant, "name": "first", "tags": ["x"]})
    assert created["id"] == "a"
    assert created["name"] == "first"
    assert created["tags"] == ["x"]
    assert isinstance(created["_etag"], str)
    assert created["_etag"]
    assert isinstance(created["_ts"], int)
    assert abs(created["_ts"] - store_harness.clock.now().timestamp()) < 120


async def test_read_returns_exactly_what_was_written(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    item = {"id": "a", "tenant": tenant, "n": 1.5, "flag": False, "none": None, "nested": {"k": [1, "2"]}}
    created = await container.create(item)
    read = await container.read("a", tenant)
    for key, value in item.items():
        assert read[key] == value
    assert read["_etag"] == created["_etag"]
    assert read["_ts"] == created["_ts"]


async def test_creating_an_existing_id_in_the_partition_conflicts(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    await container.create({"id": "a", "tenant": tenant, "v": 1})
    with pytest.raises(Conflict):
        await container.create({"id": "a", "tenant": tenant, "v": 2})
    assert (await container.read("a", tenant))["v"] == 1


async def test_reading_a_missing_item_is_not_found(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    with pytest.raises(NotFound):
        await container.read("nope", tenant)
    await container.create({"id": "a", "tenant": tenant})
    with pytest.raises(NotFound):
        await container.read("a", fresh())  # right id, wrong partition


async def test_the_same_id_in_two_partitions_is_two_items(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    one, two = fresh(), fresh()
    await container.create({"id": "same", "tenant": one, "v": 1})
    await container.create({"id": "same", "tenant": two, "v": 2})
    assert (await container.read("same", one))["v"] == 1
    assert (await container.read("same", two))["v"] == 2
    await container.delete("same", one)
    assert (await container.read("same", two))["v"] == 2


async def test_a_nested_partition_key_path_is_read_from_the_item(store_harness: StoreHarness) -> None:
    container = store_harness.store.container("nested")
    owner = fresh("owner")
    await container.create({"id": "a", "owner": {"id": owner, "kind": "patient"}, "v": 1})
    assert (await container.read("a", owner))["owner"]["kind"] == "patient"
    page = await container.query(Query(), partition_key=owner)
    assert ids(page.items) == ["a"]
    replaced = await container.replace({"id": "a", "owner": {"id": owner}, "v": 2})
    assert replaced["v"] == 2
    await container.delete("a", owner)
    with pytest.raises(NotFound):
        await container.read("a", owner)


async def test_every_write_produces_a_new_etag(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    first = await container.create({"id": "a", "tenant": tenant})
    second = await container.replace({"id": "a", "tenant": tenant, "v": 1})
    third = await container.upsert({"id": "a", "tenant": tenant, "v": 2})
    assert len({first["_etag"], second["_etag"], third["_etag"]}) == 3


async def test_replace_with_the_current_etag_succeeds(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant, "v": 1})
    replaced = await container.replace({**created, "v": 2}, etag=created["_etag"])
    assert replaced["v"] == 2
    assert (await container.read("a", tenant))["v"] == 2


async def test_replace_with_a_stale_etag_is_refused_and_changes_nothing(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant, "v": 1})
    await container.replace({"id": "a", "tenant": tenant, "v": 2})
    with pytest.raises(PreconditionFailed):
        await container.replace({"id": "a", "tenant": tenant, "v": 3}, etag=created["_etag"])
    assert (await container.read("a", tenant))["v"] == 2


async def test_replace_without_an_etag_overwrites_the_whole_item(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    await container.create({"id": "a", "tenant": tenant, "old": True})
    await container.replace({"id": "a", "tenant": tenant, "new": True})
    read = await container.read("a", tenant)
    assert read["new"] is True
    assert "old" not in read


async def test_replacing_a_missing_item_is_not_found(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    with pytest.raises(NotFound):
        await container.replace({"id": "ghost", "tenant": tenant})
    with pytest.raises(NotFound):
        await container.read("ghost", tenant)


async def test_upsert_creates_then_replaces(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    created = await container.upsert({"id": "a", "tenant": tenant, "v": 1})
    assert (await container.read("a", tenant))["v"] == 1
    replaced = await container.upsert({"id": "a", "tenant": tenant, "v": 2})
    assert replaced["_etag"] != created["_etag"]
    assert (await container.read("a", tenant))["v"] == 2


async def test_upsert_with_an_etag_is_a_conditional_replace(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant, "v": 1})
    current = await container.upsert({"id": "a", "tenant": tenant, "v": 2}, etag=created["_etag"])
    with pytest.raises(PreconditionFailed):
        await container.upsert({"id": "a", "tenant": tenant, "v": 3}, etag=created["_etag"])
    read = await container.read("a", tenant)
    assert read["v"] == 2
    assert read["_etag"] == current["_etag"]


async def test_upsert_with_an_etag_of_an_absent_item_creates_it(store_harness: StoreHarness) -> None:
    # Cosmos DB applies If-Match to an upsert only when the item exists.
    container = things(store_harness)
    tenant = fresh()
    await container.upsert({"id": "a", "tenant": tenant, "v": 1}, etag='"not-an-etag"')
    assert (await container.read("a", tenant))["v"] == 1


async def test_delete_removes_the_item(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant})
    await container.delete("a", tenant, etag=created["_etag"])
    with pytest.raises(NotFound):
        await container.read("a", tenant)
    with pytest.raises(NotFound):
        await container.delete("a", tenant)


async def test_delete_with_a_stale_etag_keeps_the_item(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant, "v": 1})
    await container.replace({"id": "a", "tenant": tenant, "v": 2})
    with pytest.raises(PreconditionFailed):
        await container.delete("a", tenant, etag=created["_etag"])
    assert (await container.read("a", tenant))["v"] == 2


async def test_a_deleted_id_can_be_created_again(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    await container.create({"id": "a", "tenant": tenant, "v": 1})
    await container.delete("a", tenant)
    await container.create({"id": "a", "tenant": tenant, "v": 2})
    assert (await container.read("a", tenant))["v"] == 2


# ---- queries -------------------------------------------------------------------------------------


async def seed_values(container: Container, tenant: str) -> None:
    """One item per JSON type in `v`, plus one without `v`."""
    values: dict[str, Any] = {
        "int1": 1,
        "int5": 5,
        "float2": 2.5,
        "str5": "5",
        "strb": "b",
        "true": True,
        "false": False,
        "null": None,
        "arr": [5, "x"],
        "obj": {"n": 5},
    }
    for item_id, value in values.items():
        await container.create({"id": item_id, "tenant": tenant, "v": value})
    await container.create({"id": "missing", "tenant": tenant})


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        pytest.param("=", 5, {"int5"}, id="equals-number"),
        pytest.param("=", "5", {"str5"}, id="equals-string-not-number"),
        pytest.param("=", True, {"true"}, id="equals-true-not-one"),
        pytest.param("=", None, {"null"}, id="equals-null"),
        pytest.param("!=", 5, {"int1", "float2"}, id="not-equals-only-same-type"),
        pytest.param("!=", "b", {"str5"}, id="not-equals-string"),
        pytest.param("<", 5, {"int1", "float2"}, id="less-than"),
        pytest.param("<=", 2.5, {"int1", "float2"}, id="less-or-equal"),
        pytest.param(">", 1, {"int5", "float2"}, id="greater-than"),
        pytest.param(">=", 5, {"int5"}, id="greater-or-equal"),
        pytest.param(">", "4", {"str5", "strb"}, id="greater-than-string"),
        pytest.param("<", True, {"false"}, id="booleans-compare-as-booleans"),
        pytest.param("in", [5, "b", True], {"int5", "strb", "true"}, id="in-mixed"),
        pytest.param("in", ["1", 2], set(), id="in-never-coerces-types"),
        pytest.param("in", [], set(), id="in-empty"),
        pytest.param("contains", 5, {"arr"}, id="contains-number"),
        pytest.param("contains", "x", {"arr"}, id="contains-string"),
        pytest.param("contains", "5", set(), id="contains-never-coerces-types"),
        pytest.param(
            "defined",
            None,
            {"int1", "int5", "float2", "str5", "strb", "true", "false", "null", "arr", "obj"},
            id="defined-includes-null",
        ),
        pytest.param("undefined", None, {"missing"}, id="undefined"),
    ],
)
async def test_query_operators_follow_cosmos_typing(
    store_harness: StoreHarness, op: Any, value: Any, expected: set[str]
) -> None:
    container = things(store_harness)
    tenant = fresh()
    await seed_values(container, tenant)
    found = await partition_ids(container, tenant, Query((where("v", op, value),)))
    assert set(found) == expected
    assert len(found) == len(expected)


async def test_query_conditions_combine_with_and_on_nested_fields(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    await container.create({"id": "a", "tenant": tenant, "status": "open", "meta": {"priority": 1}})
    await container.create({"id": "b", "tenant": tenant, "status": "open", "meta": {"priority": 3}})
    await container.create({"id": "c", "tenant": tenant, "status": "closed", "meta": {"priority": 3}})
    await container.create({"id": "d", "tenant": tenant, "status": "open"})
    query = Query((where("status", "=", "open"), where("meta.priority", ">=", 2)))
    assert await partition_ids(container, tenant, query) == ["b"]


async def test_query_orders_ascending_and_descending(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    for item_id, rank, name in [("a", 3, "x"), ("b", 1, "y"), ("c", 2, "x"), ("d", 1, "x")]:
        await container.create({"id": item_id, "tenant": tenant, "rank": rank, "name": name})
    ascending = await partition_ids(container, tenant, Query(order_by=(("rank", False),)))
    assert ascending[0] in {"b", "d"}
    assert ascending[2:] == ["c", "a"]
    descending = await partition_ids(container, tenant, Query(order_by=(("rank", True),)))
    assert descending[:2] == ["a", "c"]
    by_name = await partition_ids(
        container, tenant, Query((where("name", "=", "x"),), order_by=(("rank", True),))
    )
    assert by_name == ["a", "c", "d"]


async def test_query_orders_strings(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    for item_id, name in [("1", "carol"), ("2", "alice"), ("3", "bob")]:
        await container.create({"id": item_id, "tenant": tenant, "name": name})
    assert await partition_ids(container, tenant, Query(order_by=(("name", False),))) == ["2", "3", "1"]


async def test_a_partition_query_never_returns_other_partitions(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    mine, other = fresh(), fresh()
    for index in range(3):
        await container.create({"id": f"m{index}", "tenant": mine, "kind": "shared"})
        await container.create({"id": f"o{index}", "tenant": other, "kind": "shared"})
    found = await partition_ids(container, mine, Query((where("kind", "=", "shared"),)))
    assert sorted(found) == ["m0", "m1", "m2"]


async def test_a_count_counts_matching_items_of_one_partition_only(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    mine, other = fresh(), fresh()
    for index in range(5):
        await container.create({"id": f"m{index}", "tenant": mine, "sortKey": f"w|{index}"})
        await container.create({"id": f"o{index}", "tenant": other, "sortKey": f"w|{index}"})
    ahead = Query(
        (where("sortKey", ">=", "w|"), where("sortKey", "<", "w|3")), order_by=(("sortKey", False),)
    )
    assert await container.count(ahead, partition_key=mine) == 3
    assert await container.count(Query(), partition_key=mine) == 5
    assert await container.count(ahead, partition_key=fresh()) == 0


async def test_a_cross_partition_query_spans_partitions(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    run = fresh("run")
    expected = set()
    for tenant_index in range(3):
        tenant = fresh()
        for index in range(2):
            item_id = f"{tenant_index}-{index}"
            await container.create({"id": item_id, "tenant": tenant, "run": run, "n": tenant_index})
            expected.add(item_id)
    await container.create({"id": "unrelated", "tenant": fresh(), "run": fresh("run")})
    query = Query((where("run", "=", run),))
    items, _ = await all_pages(lambda c: container.query_cross_partition(query, max_items=4, continuation=c))
    assert set(ids(items)) == expected
    assert len(items) == len(expected)
    ordered, _ = await all_pages(
        lambda c: container.query_cross_partition(
            Query((where("run", "=", run),), order_by=(("n", True),)), continuation=c
        )
    )
    assert [item["n"] for item in ordered] == [2, 2, 1, 1, 0, 0]


@pytest.mark.parametrize("order_by", [(), (("bucket", False),), (("bucket", True),)])
async def test_paging_returns_every_item_exactly_once(
    store_harness: StoreHarness, order_by: tuple[tuple[str, bool], ...]
) -> None:
    container = things(store_harness)
    tenant = fresh()
    for index in range(25):
        # Few distinct buckets: most sort keys tie, so the tie-break carries the paging.
        await container.create({"id": f"i{index:02d}", "tenant": tenant, "bucket": index % 3})
    query = Query(order_by=order_by)
    page_sizes: list[int] = []

    async def fetch(continuation: str | None) -> Page:
        page = await container.query(query, partition_key=tenant, max_items=10, continuation=continuation)
        page_sizes.append(len(page.items))
        return page

    items, pages = await all_pages(fetch)
    assert sorted(ids(items)) == [f"i{index:02d}" for index in range(25)]
    assert len(items) == 25
    assert max(page_sizes) <= 10
    assert pages >= 3
    if order_by:
        buckets = [item["bucket"] for item in items]
        assert buckets == sorted(buckets, reverse=order_by[0][1])


async def test_a_partition_pages_in_a_stable_order_while_others_write(store_harness: StoreHarness) -> None:
    """What every paged list relies on (an index partition ordered by `sortKey`): between two
    pages, other requests add items after the cursor (they are returned, in order), add items
    before it (they are not: the reader has passed that point) and update a returned one (it is
    not returned again); no item present throughout is skipped or repeated."""
    container = things(store_harness)
    tenant = fresh()
    for index in range(0, 30, 2):
        await container.create({"id": f"i{index:02d}", "tenant": tenant, "sortKey": f"k{index:02d}"})
    query = Query(order_by=(("sortKey", False),))
    seen: list[str] = []
    added_after: list[str] = []
    continuation: str | None = None
    pages = 0
    while True:
        page = await container.query(query, partition_key=tenant, max_items=4, continuation=continuation)
        pages += 1
        assert len(page.items) <= 4
        assert page.items or page.continuation is None  # only the last page may come back empty
        seen += [item["sortKey"] for item in page.items]
        continuation = page.continuation
        if continuation is None:
            break
        cursor = int(seen[-1][1:])
        if cursor + 1 < 30:  # an odd key right after the cursor, written by "someone else"
            await container.create(
                {"id": f"i{cursor + 1:02d}", "tenant": tenant, "sortKey": f"k{cursor + 1:02d}"}
            )
            added_after.append(f"k{cursor + 1:02d}")
        await container.create({"id": f"before-{pages}", "tenant": tenant, "sortKey": "a"})
        first = await container.read("i00", tenant)
        await container.replace({**first, "touched": pages})
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))
    assert set(seen) == {f"k{index:02d}" for index in range(0, 30, 2)} | set(added_after)
    assert added_after
    assert pages >= 5


async def test_a_cross_partition_order_by_is_never_paged(store_harness: StoreHarness) -> None:
    """Cosmos DB cannot resume a cross-partition ORDER BY from a token, so no backend hands one out
    or takes one: such a query must fit one page. Without ORDER BY it pages as usual."""
    container = things(store_harness)
    run = fresh("run")
    for n in range(3):
        await container.create({"id": f"n{n}", "tenant": fresh(), "run": run, "n": n})
    ordered = Query((where("run", "=", run),), order_by=(("n", True),))
    whole = await container.query_cross_partition(ordered, max_items=3)
    assert [item["n"] for item in whole.items] == [2, 1, 0]
    assert whole.continuation is None
    with pytest.raises(UnpageableQuery):
        await container.query_cross_partition(ordered, max_items=2)
    streamable = Query((where("run", "=", run),))
    first = await container.query_cross_partition(streamable, max_items=1)
    assert first.continuation is not None
    with pytest.raises(UnpageableQuery):
        await container.query_cross_partition(ordered, max_items=10, continuation=first.continuation)
    items, pages = await all_pages(
        lambda c: container.query_cross_partition(streamable, max_items=1, continuation=c)
    )
    assert sorted(ids(items)) == ["n0", "n1", "n2"]
    assert pages >= 3


async def test_query_values_that_look_like_sql_are_plain_data(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    hostile = [
        "x' OR '1'='1",
        '"); DROP TABLE documents; --',
        "1 OR 1=1",
        "$.tenant",
        "@p0",
        "' OR c.id != '",
    ]
    for index, value in enumerate(hostile):
        await container.create({"id": f"h{index}", "tenant": tenant, "name": value})
    await container.create({"id": "plain", "tenant": tenant, "name": "plain"})
    for index, value in enumerate(hostile):
        assert await partition_ids(container, tenant, Query((where("name", "=", value),))) == [f"h{index}"]
    assert await partition_ids(container, tenant, Query((where("name", "in", hostile[:2]),))) == ["h0", "h1"]
    assert (await container.read("plain", tenant))["name"] == "plain"


# ---- TTL -----------------------------------------------------------------------------------------


async def test_an_item_ttl_makes_it_expire(store_harness: StoreHarness) -> None:
    container = store_harness.store.container("expiring")
    tenant = fresh()
    await container.create({"id": "brief", "tenant": tenant, "ttl": 2})
    await container.create({"id": "forever", "tenant": tenant, "ttl": -1})
    await container.create({"id": "default", "tenant": tenant})
    assert (await container.read("brief", tenant))["ttl"] == 2
    await store_harness.advance(3.5)
    with pytest.raises(NotFound):
        await container.read("brief", tenant)
    assert await partition_ids(container, tenant, Query(order_by=(("id", False),))) == ["default", "forever"]


async def test_a_container_default_ttl_expires_items_unless_they_say_never(
    store_harness: StoreHarness,
) -> None:
    container = store_harness.store.container("short_lived")
    tenant = fresh()
    await container.create({"id": "default", "tenant": tenant})
    await container.create({"id": "forever", "tenant": tenant, "ttl": -1})
    await container.create({"id": "longer", "tenant": tenant, "ttl": 60})
    await store_harness.advance(3.5)
    with pytest.raises(NotFound):
        await container.read("default", tenant)
    assert await partition_ids(container, tenant, Query(order_by=(("id", False),))) == ["forever", "longer"]


async def test_with_ttl_off_an_item_ttl_is_ignored(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    await container.create({"id": "a", "tenant": tenant, "ttl": 1})
    await store_harness.advance(3)
    assert (await container.read("a", tenant))["ttl"] == 1


async def test_a_write_renews_the_expiry(store_harness: StoreHarness) -> None:
    container = store_harness.store.container("short_lived")
    tenant = fresh()
    await container.create({"id": "a", "tenant": tenant, "v": 1})
    await store_harness.advance(1)
    await container.replace({"id": "a", "tenant": tenant, "v": 2})
    await store_harness.advance(1)  # past the first write's expiry, inside the second's
    assert (await container.read("a", tenant))["v"] == 2
    await store_harness.advance(2)
    with pytest.raises(NotFound):
        await container.read("a", tenant)


async def test_an_expired_item_cannot_be_replaced_but_its_id_can_be_created_again(
    store_harness: StoreHarness,
) -> None:
    container = store_harness.store.container("short_lived")
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant, "v": 1})
    await store_harness.advance(3.5)
    with pytest.raises(NotFound):
        await container.replace({"id": "a", "tenant": tenant, "v": 2}, etag=created["_etag"])
    with pytest.raises(NotFound):
        await container.delete("a", tenant)
    await container.create({"id": "a", "tenant": tenant, "v": 3})
    assert (await container.read("a", tenant))["v"] == 3


# ---- transactional batch -------------------------------------------------------------------------


async def test_a_batch_applies_all_operations_in_order(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    existing = await container.create({"id": "old", "tenant": tenant, "v": 0})
    await container.create({"id": "doomed", "tenant": tenant})
    results = await container.batch(
        tenant,
        [
            BatchOperation.create({"id": "a", "tenant": tenant, "v": 1}),
            BatchOperation.replace({"id": "old", "tenant": tenant, "v": 2}, etag=existing["_etag"]),
            BatchOperation.upsert({"id": "b", "tenant": tenant, "v": 3}),
            BatchOperation.delete("doomed"),
            BatchOperation.read("a"),
        ],
    )
    assert len(results) == 5
    assert results[0] is not None
    assert results[0]["v"] == 1
    assert results[1] is not None
    assert results[1]["v"] == 2
    assert results[3] is None
    assert results[4] is not None
    assert results[4]["_etag"] == results[0]["_etag"]
    assert sorted(await partition_ids(container, tenant)) == ["a", "b", "old"]
    assert (await container.read("old", tenant))["v"] == 2


async def test_a_failing_batch_operation_rolls_back_the_whole_batch(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    await container.create({"id": "taken", "tenant": tenant, "v": 0})
    with pytest.raises(BatchFailed) as failed:
        await container.batch(
            tenant,
            [
                BatchOperation.create({"id": "a", "tenant": tenant}),
                BatchOperation.upsert({"id": "taken", "tenant": tenant, "v": 1}),
                BatchOperation.create({"id": "taken", "tenant": tenant, "v": 2}),
                BatchOperation.create({"id": "b", "tenant": tenant}),
            ],
        )
    assert failed.value.index == 2
    assert isinstance(failed.value.error, Conflict)
    assert await partition_ids(container, tenant) == ["taken"]
    assert (await container.read("taken", tenant))["v"] == 0


async def test_a_batch_etag_precondition_failure_rolls_back(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    created = await container.create({"id": "a", "tenant": tenant, "v": 0})
    await container.replace({"id": "a", "tenant": tenant, "v": 1})
    with pytest.raises(BatchFailed) as failed:
        await container.batch(
            tenant,
            [
                BatchOperation.create({"id": "b", "tenant": tenant}),
                BatchOperation.replace({"id": "a", "tenant": tenant, "v": 2}, etag=created["_etag"]),
            ],
        )
    assert failed.value.index == 1
    assert isinstance(failed.value.error, PreconditionFailed)
    assert await partition_ids(container, tenant) == ["a"]
    assert (await container.read("a", tenant))["v"] == 1


async def test_a_batch_reading_a_missing_item_fails(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    with pytest.raises(BatchFailed) as failed:
        await container.batch(
            tenant, [BatchOperation.create({"id": "a", "tenant": tenant}), BatchOperation.read("ghost")]
        )
    assert failed.value.index == 1
    assert isinstance(failed.value.error, NotFound)
    assert await partition_ids(container, tenant) == []


async def test_a_batch_item_from_another_partition_fails_the_batch(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant, other = fresh(), fresh()
    with pytest.raises(BatchFailed) as failed:
        await container.batch(
            tenant,
            [
                BatchOperation.create({"id": "a", "tenant": tenant}),
                BatchOperation.create({"id": "b", "tenant": other}),
            ],
        )
    assert failed.value.index == 1
    assert await partition_ids(container, tenant) == []
    assert await partition_ids(container, other) == []


async def test_a_batch_of_more_than_100_operations_is_refused(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    operations = [
        BatchOperation.create({"id": f"i{index}", "tenant": tenant})
        for index in range(MAX_BATCH_OPERATIONS + 1)
    ]
    with pytest.raises(ValueError, match="at most 100"):
        await container.batch(tenant, operations)
    assert await partition_ids(container, tenant) == []
    results = await container.batch(tenant, operations[:MAX_BATCH_OPERATIONS])
    assert len(results) == MAX_BATCH_OPERATIONS


# ---- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_etag_increments_lose_no_update(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()
    await container.create({"id": "counter", "tenant": tenant, "count": 0})
    workers = 20
    conflicts = 0
    # Every worker reads before any writes, so the first round is guaranteed to collide.
    all_have_read = asyncio.Barrier(workers)

    async def increment() -> None:
        nonlocal conflicts
        first = True
        while True:
            current = await container.read("counter", tenant)
            if first:
                first = False
                await all_have_read.wait()
            try:
                await container.replace({**current, "count": current["count"] + 1}, etag=current["_etag"])
                return
            except PreconditionFailed:
                conflicts += 1

    await asyncio.gather(*(increment() for _ in range(workers)))
    assert (await container.read("counter", tenant))["count"] == workers
    assert conflicts >= workers - 1


async def test_concurrent_creates_of_one_id_let_exactly_one_win(store_harness: StoreHarness) -> None:
    container = things(store_harness)
    tenant = fresh()

    async def create(index: int) -> int | Exception:
        try:
            await container.create({"id": "only", "tenant": tenant, "winner": index})
            return index
        except Conflict as exc:
            return exc

    outcomes = await asyncio.gather(*(create(index) for index in range(15)))
    winners = [outcome for outcome in outcomes if isinstance(outcome, int)]
    assert len(winners) == 1
    assert sum(isinstance(outcome, Conflict) for outcome in outcomes) == 14
    assert (await container.read("only", tenant))["winner"] == winners[0]
