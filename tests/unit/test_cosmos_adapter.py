"""What the Cosmos DB adapter sends, and how it maps answers, without a Cosmos endpoint: the SDK
client is replaced by recording fakes that raise the SDK's own exception types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError
from azure.cosmos import exceptions as cosmos_errors

from shared.adapters.cosmos_documents import (
    CosmosDocumentStore,
    ThrottleRetry,
    batch_operation_tuple,
    render_query,
)
from shared.kernel.documents import (
    BatchFailed,
    BatchOperation,
    ContainerSpec,
    Page,
    Query,
    UnpageableQuery,
    where,
)
from shared.kernel.errors import BadRequest, Conflict, NotFound, PreconditionFailed, Unavailable

SPECS = {
    "things": ContainerSpec("things", "/tenant"),
    "audit": ContainerSpec("audit", "/patientId", default_ttl=3600),
    "plain": ContainerSpec("plain", "/id"),
}


class FakeResponse:
    """Just enough of an azure-core HTTP response for the SDK's exception constructors."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self.reason = "fake"
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return "{}"


def http_error(status: int, headers: dict[str, str] | None = None) -> cosmos_errors.CosmosHttpResponseError:
    # The SDK raises these subclasses for these statuses (azure/cosmos/aio/_asynchronous_request.py).
    cls = {
        404: cosmos_errors.CosmosResourceNotFoundError,
        409: cosmos_errors.CosmosResourceExistsError,
        412: cosmos_errors.CosmosAccessConditionFailedError,
    }.get(status, cosmos_errors.CosmosHttpResponseError)
    return cls(message="fake", response=FakeResponse(status, headers))


class FakePage:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = items

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async def gen() -> AsyncIterator[dict[str, Any]]:
            for item in self._items:
                yield item

        return gen()


class FakePager:
    def __init__(self, pages: list[tuple[list[dict[str, Any]], str | None]], calls: list[Any]) -> None:
        self._pages = pages
        self._calls = calls
        self.continuation_token: str | None = None

    def by_page(self, continuation_token: str | None = None) -> FakePager:
        self._calls.append(("by_page", continuation_token))
        return self

    def __aiter__(self) -> AsyncIterator[FakePage]:
        async def gen() -> AsyncIterator[FakePage]:
            for items, token in self._pages:
                self.continuation_token = token
                yield FakePage(items)

        return gen()


class FakeContainer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.raises: Exception | None = None
        self.pages: list[tuple[list[dict[str, Any]], str | None]] = [([], None)]
        self.batch_result: list[dict[str, Any]] = []

    async def _answer(self, name: str, kwargs: dict[str, Any], result: Any) -> Any:
        self.calls.append((name, kwargs))
        if self.raises is not None:
            raise self.raises
        return result

    async def create_item(self, **kw: Any) -> Any:
        return await self._answer("create_item", kw, {**kw["body"], "_etag": "e1", "_ts": 1, "_rid": "r"})

    async def read_item(self, **kw: Any) -> Any:
        return await self._answer("read_item", kw, {"id": kw["item"], "_etag": "e1", "_self": "s"})

    async def replace_item(self, **kw: Any) -> Any:
        return await self._answer("replace_item", kw, {**kw["body"], "_etag": "e2"})

    async def upsert_item(self, **kw: Any) -> Any:
        return await self._answer("upsert_item", kw, {**kw["body"], "_etag": "e2"})

    async def delete_item(self, **kw: Any) -> Any:
        return await self._answer("delete_item", kw, None)

    def query_items(self, **kw: Any) -> FakePager:
        self.calls.append(("query_items", kw))
        if self.raises is not None:
            raise self.raises
        return FakePager(self.pages, self.calls)

    async def execute_item_batch(self, **kw: Any) -> Any:
        return await self._answer("execute_item_batch", kw, self.batch_result)


class FakeDatabase:
    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.created: list[dict[str, Any]] = []
        self.read_error: Exception | None = None

    def get_container_client(self, name: str) -> FakeContainer:
        return self.containers.setdefault(name, FakeContainer())

    async def read(self) -> dict[str, Any]:
        if self.read_error is not None:
            raise self.read_error
        return {"id": "db"}

    async def create_container_if_not_exists(self, **kw: Any) -> None:
        self.created.append(kw)


class FakeClient:
    def __init__(self) -> None:
        self.database = FakeDatabase()
        self.entered = 0
        self.closed = 0
        self.databases_created: list[str] = []
        self.enter_error: Exception | None = None

    async def __aenter__(self) -> FakeClient:
        self.entered += 1
        if self.enter_error is not None:
            raise self.enter_error
        return self

    async def close(self) -> None:
        self.closed += 1

    def get_database_client(self, name: str) -> FakeDatabase:
        return self.database

    async def create_database_if_not_exists(self, id: str) -> FakeDatabase:
        self.databases_created.append(id)
        return self.database


class Harness:
    def __init__(self, *, emulator: bool = False) -> None:
        self.clients: list[FakeClient] = []

        def factory() -> FakeClient:
            client = FakeClient()
            self.clients.append(client)
            return client

        self.store = CosmosDocumentStore(
            "https://acct.documents.azure.com:443/",
            "psc",
            SPECS,
            lambda: "unused",
            emulator=emulator,
            client_factory=factory,
        )

    async def container(self, name: str = "things") -> FakeContainer:
        await self.store.container(name).read("warm", "t")  # opens the client
        fake = self.clients[0].database.containers[name]
        fake.calls.clear()
        return fake


# -- query rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_comparisons_render_as_parameters(op: str) -> None:
    sql, params = render_query(Query((where("status", op, "waiting"),)))  # type: ignore[arg-type]

    assert sql == f"SELECT * FROM c WHERE c.status {op} @p0"
    assert params == [{"name": "@p0", "value": "waiting"}]


def test_every_operator_and_ordering_renders_to_parameterised_sql() -> None:
    query = Query(
        (
            where("status", "=", "waiting"),
            where("tags", "contains", "urgent"),
            where("queue.id", "in", ["q1", "q2"]),
            where("closedAt", "undefined"),
            where("assignedTo", "defined"),
        ),
        order_by=(("priority", False), ("created.at", True)),
    )

    sql, params = render_query(query)

    assert sql == (
        "SELECT * FROM c WHERE c.status = @p0 AND ARRAY_CONTAINS(c.tags, @p1)"
        " AND ARRAY_CONTAINS(@p2, c.queue.id) AND NOT IS_DEFINED(c.closedAt) AND IS_DEFINED(c.assignedTo)"
        " ORDER BY c.priority ASC, c.created.at DESC"
    )
    assert params == [
        {"name": "@p0", "value": "waiting"},
        {"name": "@p1", "value": "urgent"},
        {"name": "@p2", "value": ["q1", "q2"]},
    ]


def test_hostile_values_never_reach_the_sql_text() -> None:
    sql, params = render_query(Query((where("name", "=", "x' OR 1=1 --"),)))

    assert "OR 1=1" not in sql
    assert params[0]["value"] == "x' OR 1=1 --"


def test_keyword_fields_are_quoted() -> None:
    sql, _ = render_query(Query((where("value", "=", 1),), order_by=(("order.by", False),)))

    assert sql == 'SELECT * FROM c WHERE c["value"] = @p0 ORDER BY c["order"]["by"] ASC'


def test_an_empty_query_selects_everything() -> None:
    assert render_query(Query()) == ("SELECT * FROM c", [])


def test_invalid_field_paths_are_refused_by_the_port() -> None:
    with pytest.raises(ValueError, match="invalid field path"):
        where("a; DROP", "=", 1)


# -- what is sent ----------------------------------------------------------------------------------


async def test_no_client_is_created_before_first_use() -> None:
    harness = Harness()
    harness.store.container("things")

    assert harness.clients == []
    await harness.store.container("things").read("a", "t")
    await harness.store.container("audit").read("b", "p")
    assert len(harness.clients) == 1
    assert harness.clients[0].entered == 1


async def test_point_operations_pass_ids_partition_keys_and_strip_bookkeeping() -> None:
    harness = Harness()
    fake = await harness.container()
    container = harness.store.container("things")

    created = await container.create({"id": "a", "tenant": "t"})
    read = await container.read("a", "t")
    await container.delete("a", "t")

    assert created == {"id": "a", "tenant": "t", "_etag": "e1", "_ts": 1}
    assert "_self" not in read
    assert fake.calls == [
        ("create_item", {"body": {"id": "a", "tenant": "t"}}),
        ("read_item", {"item": "a", "partition_key": "t"}),
        ("delete_item", {"item": "a", "partition_key": "t"}),
    ]


async def test_conditional_writes_send_the_etag_with_if_not_modified() -> None:
    harness = Harness()
    fake = await harness.container()
    container = harness.store.container("things")
    item = {"id": "a", "tenant": "t"}

    await container.replace(item, etag="e1")
    await container.upsert(item, etag="e1")
    await container.delete("a", "t", etag="e1")
    await container.replace(item)

    condition = {"etag": "e1", "match_condition": MatchConditions.IfNotModified}
    assert fake.calls == [
        ("replace_item", {"item": "a", "body": item, **condition}),
        ("upsert_item", {"body": item, **condition}),
        ("delete_item", {"item": "a", "partition_key": "t", **condition}),
        ("replace_item", {"item": "a", "body": item}),
    ]


async def test_a_partition_query_is_scoped_and_pages_with_the_continuation_token() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.pages = [([{"id": "a", "_rid": "x"}], "token-2")]

    page = await harness.store.container("things").query(
        Query((where("status", "=", "open"),)), partition_key="t", max_items=5, continuation="token-1"
    )

    assert page.items == [{"id": "a"}]
    assert page.continuation == "token-2"
    assert fake.calls == [
        (
            "query_items",
            {
                "query": "SELECT * FROM c WHERE c.status = @p0",
                "parameters": [{"name": "@p0", "value": "open"}],
                "max_item_count": 5,
                "continuation_token_limit": 1,  # tokens callers can wrap in bounded ones
                "partition_key": "t",
            },
        ),
        ("by_page", "token-1"),
    ]


async def test_a_count_asks_one_partition_for_select_value_count() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.pages = [([3], None)]

    ahead = Query(
        (where("sortKey", ">=", "w|"), where("sortKey", "<", "w|5")), order_by=(("sortKey", False),)
    )
    assert await harness.store.container("things").count(ahead, partition_key="general") == 3
    assert fake.calls == [
        (
            "query_items",
            {
                "query": "SELECT VALUE COUNT(1) FROM c WHERE c.sortKey >= @p0 AND c.sortKey < @p1",
                "parameters": [{"name": "@p0", "value": "w|"}, {"name": "@p1", "value": "w|5"}],
                "partition_key": "general",
            },
        ),
        ("by_page", None),
    ]


@pytest.mark.parametrize(
    "token",
    ["[" * 1000 + "]" * 1000, '{"token":"a","token":"b"}', "x" * (17 * 1024), '[{"token":"\u0000"}]'],
    ids=["nested 1,000 deep", "duplicate key", "over 16 KiB", "control character"],
)
async def test_a_continuation_token_we_could_not_have_issued_is_400_before_the_sdk_sees_it(
    token: str,
) -> None:
    harness = Harness()
    fake = await harness.container()
    with pytest.raises(BadRequest):
        await harness.store.container("things").query_cross_partition(Query(), continuation=token)
    assert fake.calls == []


@pytest.mark.parametrize(
    "error",
    [ValueError("bad token"), KeyError("range"), cosmos_errors.CosmosHttpResponseError(status_code=400)],
    ids=["sdk ValueError", "sdk KeyError", "service 400"],
)
async def test_a_continuation_token_the_sdk_or_service_refuses_is_400(error: Exception) -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = error
    with pytest.raises(BadRequest):
        await harness.store.container("things").query_cross_partition(Query(), continuation="forged")
    fake.raises = cosmos_errors.CosmosHttpResponseError(status_code=400)
    with pytest.raises(cosmos_errors.CosmosHttpResponseError):  # without a token a 400 is our bug
        await harness.store.container("things").query_cross_partition(Query())


async def test_a_cross_partition_query_names_no_partition_and_skips_empty_pages() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.pages = [([], "t1"), ([], "t2"), ([{"id": "b"}], None)]

    page = await harness.store.container("things").query_cross_partition(Query(), max_items=10)

    assert page.items == [{"id": "b"}]
    assert page.continuation is None
    name, kwargs = fake.calls[0]
    assert name == "query_items"
    assert "partition_key" not in kwargs  # the async SDK fans out when no partition key is given
    assert fake.calls[1] == ("by_page", None)


async def test_a_cross_partition_order_by_with_a_continuation_is_refused_before_any_request() -> None:
    harness = Harness()
    fake = await harness.container()

    with pytest.raises(UnpageableQuery):
        await harness.store.container("things").query_cross_partition(
            Query(order_by=(("start", False),)), max_items=10, continuation="token-from-a-page"
        )

    assert fake.calls == []


async def test_a_cross_partition_order_by_must_fit_one_page_and_hands_out_no_token() -> None:
    harness = Harness()
    fake = await harness.container()
    # The SDK may return short pages; the adapter reads on to max_items + 1 before it decides.
    fake.pages = [([{"id": "a"}], "t1"), ([{"id": "b"}], "t2"), ([], None)]
    ordered = Query(order_by=(("id", False),))

    page = await harness.store.container("things").query_cross_partition(ordered, max_items=2)

    assert page == Page(items=[{"id": "a"}, {"id": "b"}], continuation=None)
    assert fake.calls[0][1]["max_item_count"] == 3
    fake.pages = [([{"id": "a"}, {"id": "b"}], "t1"), ([{"id": "c"}], "t2")]
    with pytest.raises(UnpageableQuery):
        await harness.store.container("things").query_cross_partition(ordered, max_items=2)


async def test_a_streamable_cross_partition_query_still_pages() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.pages = [([{"id": "a"}], "t2")]

    page = await harness.store.container("things").query_cross_partition(
        Query(), max_items=1, continuation="t1"
    )

    assert page == Page(items=[{"id": "a"}], continuation="t2")
    assert fake.calls[-1] == ("by_page", "t1")


async def test_a_token_the_service_rejects_is_a_bad_request() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = http_error(400)

    with pytest.raises(BadRequest):
        await harness.store.container("things").query(Query(), partition_key="t", continuation="forged")


def test_batch_operations_become_sdk_tuples_with_etags() -> None:
    item = {"id": "a", "tenant": "t"}

    assert batch_operation_tuple(BatchOperation.create(item)) == ("create", (item,), {})
    assert batch_operation_tuple(BatchOperation.replace(item, "e")) == (
        "replace",
        ("a", item),
        {"if_match_etag": "e"},
    )
    assert batch_operation_tuple(BatchOperation.upsert(item)) == ("upsert", (item,), {})
    assert batch_operation_tuple(BatchOperation.delete("a", "e")) == (
        "delete",
        ("a",),
        {"if_match_etag": "e"},
    )
    assert batch_operation_tuple(BatchOperation.read("a")) == ("read", ("a",), {})


async def test_a_batch_sends_its_partition_and_returns_each_item() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.batch_result = [
        {"statusCode": 201, "resourceBody": {"id": "a", "_etag": "e", "_rid": "r"}},
        {"statusCode": 204},
    ]

    result = await harness.store.container("things").batch(
        "t", [BatchOperation.create({"id": "a", "tenant": "t"}), BatchOperation.delete("b")]
    )

    assert result == [{"id": "a", "_etag": "e"}, None]
    assert fake.calls[0][1]["partition_key"] == "t"
    assert len(fake.calls[0][1]["batch_operations"]) == 2


async def test_a_failed_batch_names_the_failing_operation_and_its_error() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = cosmos_errors.CosmosBatchOperationError(
        error_index=1,
        headers={},
        status_code=409,
        message="batch failed",
        operation_responses=[{"statusCode": 424}, {"statusCode": 409}],
    )

    with pytest.raises(BatchFailed) as failed:
        await harness.store.container("things").batch(
            "t", [BatchOperation.read("x"), BatchOperation.create({"id": "a", "tenant": "t"})]
        )

    assert failed.value.index == 1
    assert isinstance(failed.value.error, Conflict)


async def test_an_empty_batch_sends_nothing_and_an_oversized_one_is_refused() -> None:
    harness = Harness()
    fake = await harness.container()
    container = harness.store.container("things")

    assert await container.batch("t", []) == []
    with pytest.raises(ValueError, match="at most 100"):
        await container.batch("t", [BatchOperation.read(str(i)) for i in range(101)])
    assert fake.calls == []


# -- error mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, NotFound), (409, Conflict), (412, PreconditionFailed), (503, Unavailable), (403, Unavailable)],
)
async def test_sdk_statuses_map_to_port_errors(status: int, error: type[Exception]) -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = http_error(status)

    with pytest.raises(error):
        await harness.store.container("things").replace({"id": "a", "tenant": "t"}, etag="e")


async def test_a_missing_container_is_unavailable_not_an_absent_item() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = http_error(404, {"x-ms-substatus": "1003"})

    with pytest.raises(Unavailable):
        await harness.store.container("things").read("a", "t")


async def test_a_throttle_the_sdk_could_not_absorb_is_unavailable_with_the_servers_retry_after() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = http_error(429, {"x-ms-retry-after-ms": "250", "x-ms-substatus": "3200"})

    with pytest.raises(Unavailable) as raised:
        await harness.store.container("things").create({"id": "a", "tenant": "t"})

    assert raised.value.extensions == {"retryAfterMs": 250}


def test_the_sdk_throttle_retry_is_bounded_for_interactive_callers() -> None:
    store = CosmosDocumentStore("https://a/", "psc", SPECS, lambda: "k", throttle_retry=ThrottleRetry(4, 7))

    options = store.client_options()

    assert options["retry_throttle_total"] == 4
    assert options["retry_throttle_backoff_max"] == 7
    assert "connection_verify" not in options  # TLS is verified against real accounts


async def test_a_400_is_a_bug_and_is_not_disguised() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = http_error(400)

    with pytest.raises(cosmos_errors.CosmosHttpResponseError):
        await harness.store.container("things").query(Query(), partition_key="t")


async def test_connection_failures_are_unavailable() -> None:
    harness = Harness()
    fake = await harness.container()
    fake.raises = ServiceRequestError("connection refused")

    with pytest.raises(Unavailable):
        await harness.store.container("things").read("a", "t")


async def test_a_client_that_cannot_connect_is_closed_and_retried_on_the_next_call() -> None:
    harness = Harness()
    first_error = ServiceRequestError("no route")
    original = harness.store._client_factory

    def failing_once() -> Any:
        client = original()
        if len(harness.clients) == 1:
            client.enter_error = first_error
        return client

    harness.store._client_factory = failing_once

    with pytest.raises(Unavailable):
        await harness.store.ping()
    await harness.store.ping()

    assert harness.clients[0].closed == 1
    assert len(harness.clients) == 2


async def test_ping_reads_the_database() -> None:
    harness = Harness()
    await harness.store.ping()
    harness.clients[0].database.read_error = http_error(503)

    with pytest.raises(Unavailable):
        await harness.store.ping()


# -- provisioning ----------------------------------------------------------------------------------


async def test_containers_are_created_only_against_the_emulator() -> None:
    real = Harness(emulator=False)
    with pytest.raises(RuntimeError, match="emulator"):
        await real.store.ensure_containers()

    emulator = Harness(emulator=True)
    await emulator.store.ensure_containers()

    client = emulator.clients[0]
    assert client.databases_created == ["psc"]
    created = {c["id"]: c for c in client.database.created}
    assert set(created) == set(SPECS)
    assert created["audit"]["partition_key"]["paths"] == ["/patientId"]
    assert created["audit"]["default_ttl"] == 3600
    assert "default_ttl" not in created["things"]
    assert emulator.store.client_options()["connection_verify"] is False


async def test_close_closes_the_client_once_and_allows_reuse() -> None:
    harness = Harness()
    await harness.store.ping()
    await harness.store.close()
    await harness.store.close()

    assert harness.clients[0].closed == 1
    await harness.store.ping()
    assert len(harness.clients) == 2
