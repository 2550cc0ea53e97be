"""Document store on Azure Cosmos DB (NoSQL API), through the async SDK.

One `CosmosClient` per store (the runtime builds one store per worker), created on first use, never
in the constructor or at import. Containers are declared in Bicep; `ensure_containers()` creates
them only against a local emulator (data-plane RBAC cannot create them anyway).

Throttling (429): the SDK's throttle policy already retries every request (point operations, query
pages, batches) honouring the server's `x-ms-retry-after-ms`. We bound it — `ThrottleRetry`, by
default 9 attempts and 10 s of cumulative waiting, down from the SDK's 30 s, because an HTTP caller
is waiting — instead of stacking a second retry loop on top that would multiply the waits. A 429
that survives those retries becomes `Unavailable` carrying `retryAfterMs` in its extensions, so the
HTTP edge can answer 503 with `Retry-After` and queue triggers retry later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import (
    CosmosBatchOperationError,
    CosmosClientTimeoutError,
    CosmosHttpResponseError,
)

from shared.adapters.azure_credentials import close_quietly
from shared.kernel.documents import (
    MAX_BATCH_OPERATIONS,
    BatchFailed,
    BatchOperation,
    Condition,
    ContainerSpec,
    Item,
    Page,
    Query,
    refuse_unpageable,
    too_many_to_order,
)
from shared.kernel.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    Unavailable,
)
from shared.kernel.json_reader import JsonRejected, read_json

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

# Returned to callers: the port promises `_etag` and `_ts`; the rest is Cosmos bookkeeping.
_SYSTEM_FIELDS_DROPPED = ("_rid", "_self", "_attachments", "_lsn")
_RETRY_AFTER_HEADER = "x-ms-retry-after-ms"
# 404 with this sub-status: the database or container itself is missing, not the item.
_OWNER_RESOURCE_MISSING = 1003
_UNAVAILABLE_STATUSES = frozenset({401, 403, 408, 410, 429, 449, 500, 502, 503, 504})
# Continuation tokens the service returns stay under this (x-ms-documentdb-
# responsecontinuationtokenlimitinkb), so callers can wrap them in bounded tokens of their own.
CONTINUATION_TOKEN_LIMIT_KB = 1

# Cosmos SQL keywords cannot follow `c.`; such fields are quoted (`c["value"]`).
# fmt: off
_KEYWORDS = frozenset((
    "and", "array", "as", "asc", "between", "by", "case", "cast", "convert", "cross", "desc",
    "distinct", "else", "end", "escape", "exists", "false", "first", "for", "from", "group", "having",
    "in", "inner", "insert", "into", "is", "join", "last", "left", "like", "limit", "not", "null",
    "offset", "on", "or", "order", "outer", "over", "right", "select", "set", "then", "top", "true",
    "udf", "undefined", "update", "value", "when", "where", "with",
))
# fmt: on


@dataclass(frozen=True)
class ThrottleRetry:
    """SDK throttle-retry bounds: how often and how long (cumulative) a 429 is retried."""

    max_attempts: int = 9
    max_wait_seconds: int = 10


# ---------------------------------------------------------------------------------------------------
# Query rendering


def field_ref(path: str) -> str:
    """`a.b` → `c.a.b` (keywords quoted as `c["value"]`). The path was validated by the port."""
    return "c" + "".join(
        f'["{part}"]' if part.lower() in _KEYWORDS else f".{part}" for part in path.split(".")
    )


def render_query(query: Query) -> tuple[str, list[dict[str, Any]]]:
    """Parameterised Cosmos SQL for a port `Query`: values only ever travel as `@pN` parameters."""
    parameters: list[dict[str, Any]] = []

    def param(value: Any) -> str:
        name = f"@p{len(parameters)}"
        parameters.append({"name": name, "value": value})
        return name

    clauses = [_render_condition(condition, param) for condition in query.conditions]
    sql = "SELECT * FROM c"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if query.order_by:
        sql += " ORDER BY " + ", ".join(
            f"{field_ref(path)} {'DESC' if descending else 'ASC'}" for path, descending in query.order_by
        )
    return sql, parameters


def _render_condition(condition: Condition, param: Callable[[Any], str]) -> str:
    ref = field_ref(condition.field)
    match condition.op:
        case "=" | "!=" | "<" | "<=" | ">" | ">=":
            return f"{ref} {condition.op} {param(condition.value)}"
        case "in":
            return f"ARRAY_CONTAINS({param(list(condition.value))}, {ref})"
        case "contains":
            return f"ARRAY_CONTAINS({ref}, {param(condition.value)})"
        case "defined":
            return f"IS_DEFINED({ref})"
        case "undefined":
            return f"NOT IS_DEFINED({ref})"
    raise ValueError(f"unsupported operator {condition.op!r}")


# ---------------------------------------------------------------------------------------------------
# Error mapping


def retry_after_ms(exc: CosmosHttpResponseError) -> int | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get(_RETRY_AFTER_HEADER)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def map_status(
    status: int, *, sub_status: int | None = None, retry_after: int | None = None
) -> Exception | None:
    """Port error for a Cosmos status code, or None when the status means a bug (400 and the like)."""
    if status == 404 and sub_status == _OWNER_RESOURCE_MISSING:
        log.error("cosmos database or container missing: check the deployment (Bicep creates them)")
        return Unavailable("The document store is not provisioned.")
    if status == 404:
        return NotFound("The item does not exist.")
    if status == 409:
        return Conflict("An item with this id already exists in the partition.")
    if status == 412:
        return PreconditionFailed("The item was changed by someone else (ETag mismatch).")
    if status == 413:
        return PayloadTooLarge("The item exceeds the document size limit.")
    if status in _UNAVAILABLE_STATUSES:
        extensions = {"retryAfterMs": retry_after} if retry_after is not None else {}
        if status in (401, 403):
            log.error("cosmos refused our identity (status %s): check RBAC and the endpoint", status)
        return Unavailable(f"The document store is unavailable (status {status}).", extensions=extensions)
    return None


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except CosmosBatchOperationError:
        raise  # mapped by the batch call, which knows the operation index
    except CosmosHttpResponseError as exc:
        mapped = map_status(
            int(exc.status_code or 0), sub_status=exc.sub_status, retry_after=retry_after_ms(exc)
        )
        if mapped is None:
            raise
        if isinstance(mapped, Unavailable):
            raise mapped from exc
        raise mapped from None
    except (
        ServiceRequestError,
        ServiceResponseError,
        CosmosClientTimeoutError,
        ClientAuthenticationError,
        OSError,  # connection failures and timeouts (TimeoutError is an OSError)
    ) as exc:
        raise Unavailable("The document store cannot be reached.") from exc


_BAD_TOKEN = "The continuation token is not valid for this query."
_MAX_TOKEN_BYTES = 16 * 1024


def _check_token(token: str) -> None:
    """A continuation token comes back from outside: bounded before the SDK parses it (the SDK's
    own tokens are JSON a few levels deep, or opaque strings)."""
    if len(token) > _MAX_TOKEN_BYTES:
        raise BadRequest(_BAD_TOKEN)
    if token.lstrip()[:1] in ("[", "{"):
        try:
            read_json(token, max_bytes=_MAX_TOKEN_BYTES, max_depth=8)
        except JsonRejected:
            raise BadRequest(_BAD_TOKEN) from None


def _clean(item: Mapping[str, Any]) -> Item:
    return {key: value for key, value in item.items() if key not in _SYSTEM_FIELDS_DROPPED}


def _match(etag: str | None) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag is not None else {}


def batch_operation_tuple(operation: BatchOperation) -> tuple[Any, ...]:
    """A port batch operation in the SDK's `execute_item_batch` tuple form."""
    options: dict[str, Any] = {"if_match_etag": operation.etag} if operation.etag is not None else {}
    match operation.kind:
        case "create" | "upsert":
            assert operation.item is not None
            return (operation.kind, (operation.item,), options)
        case "replace":
            assert operation.item is not None
            return ("replace", (operation.item["id"], operation.item), options)
        case "delete" | "read":
            assert operation.id is not None
            return (operation.kind, (operation.id,), options)
    raise ValueError(f"unsupported batch operation {operation.kind!r}")


# ---------------------------------------------------------------------------------------------------
# Adapter


class CosmosContainer:
    """One catalogue container; implements `shared.kernel.documents.Container`."""

    def __init__(self, store: CosmosDocumentStore, spec: ContainerSpec) -> None:
        self.spec = spec
        self._store = store

    async def _client(self) -> Any:
        return await self._store._container_client(self.spec.name)

    async def create(self, item: Item) -> Item:
        client = await self._client()
        with _mapped_errors():
            return _clean(await client.create_item(body=item))

    async def read(self, id: str, partition_key: str) -> Item:
        client = await self._client()
        with _mapped_errors():
            return _clean(await client.read_item(item=id, partition_key=partition_key))

    async def replace(self, item: Item, *, etag: str | None = None) -> Item:
        client = await self._client()
        with _mapped_errors():
            return _clean(await client.replace_item(item=item["id"], body=item, **_match(etag)))

    async def upsert(self, item: Item, *, etag: str | None = None) -> Item:
        client = await self._client()
        with _mapped_errors():
            return _clean(await client.upsert_item(body=item, **_match(etag)))

    async def delete(self, id: str, partition_key: str, *, etag: str | None = None) -> None:
        client = await self._client()
        with _mapped_errors():
            await client.delete_item(item=id, partition_key=partition_key, **_match(etag))

    async def query(
        self,
        query: Query,
        *,
        partition_key: str,
        max_items: int = 100,
        continuation: str | None = None,
    ) -> Page:
        return await self._page(query, {"partition_key": partition_key}, max_items, continuation)

    async def count(self, query: Query, *, partition_key: str) -> int:
        sql, parameters = render_query(Query(query.conditions))
        sql = sql.replace("SELECT * FROM c", "SELECT VALUE COUNT(1) FROM c", 1)
        client = await self._client()
        with _mapped_errors():
            pager = client.query_items(query=sql, parameters=parameters, partition_key=partition_key)
            # One partition answers one value; a partial result per page is summed all the same.
            values = [value async for page in pager.by_page() async for value in page]
        return int(sum(values))

    async def query_cross_partition(
        self, query: Query, *, max_items: int = 100, continuation: str | None = None
    ) -> Page:
        # Refused before any request: the SDK would replay the token on every partition range and
        # the service answer 400 "Invalid Continuation Token" (or skip items). Port docstring.
        refuse_unpageable(query, continuation)
        if query.order_by:
            # One page or nothing: read until one item more than fits, and hand out no token.
            page = await self._page(query, {}, max_items + 1, None, drain=True)
            if len(page.items) > max_items:
                raise too_many_to_order(max_items)
            return Page(items=page.items, continuation=None)
        # The async SDK fans out when no partition key is given (it has no enable_cross_partition_query).
        return await self._page(query, {}, max_items, continuation)

    async def _page(
        self,
        query: Query,
        scope: dict[str, Any],
        max_items: int,
        continuation: str | None,
        *,
        drain: bool = False,
    ) -> Page:
        """One page of at most `max_items`; `drain`: keep reading pages until `max_items` items
        or the end (the SDK may return short pages)."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        sql, parameters = render_query(query)
        if continuation is not None:
            _check_token(continuation)
        client = await self._client()
        items: list[Item] = []
        token: str | None = None
        try:
            with _mapped_errors():
                pager = client.query_items(
                    query=sql,
                    parameters=parameters,
                    max_item_count=max_items,
                    continuation_token_limit=CONTINUATION_TOKEN_LIMIT_KB,
                    **scope,
                )
                pages = pager.by_page(continuation)
                # A fan-out query may yield empty pages that still carry a token; skip them so
                # callers never see an empty page that is not the last one.
                async for page in pages:
                    items.extend([_clean(item) async for item in page])
                    token = pages.continuation_token or None
                    if token is None or (len(items) >= max_items if drain else bool(items)):
                        break
        except (ValueError, TypeError, KeyError, RecursionError, CosmosHttpResponseError) as exc:
            # The SDK parses cross-partition tokens itself and the service answers 400 to a bad
            # one: either way the caller sent a token we did not issue for this query (the port
            # promises BadRequest, not an unmapped error that would surface as a 500).
            refused = not isinstance(exc, CosmosHttpResponseError) or exc.status_code == 400
            if continuation is not None and refused:
                raise BadRequest(_BAD_TOKEN) from None
            raise
        return Page(items=items, continuation=token)

    async def batch(self, partition_key: str, operations: Sequence[BatchOperation]) -> list[Item | None]:
        if len(operations) > MAX_BATCH_OPERATIONS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_OPERATIONS} operations")
        if not operations:
            return []
        tuples = [batch_operation_tuple(operation) for operation in operations]
        client = await self._client()
        try:
            with _mapped_errors():
                results = await client.execute_item_batch(
                    batch_operations=tuples, partition_key=partition_key
                )
        except CosmosBatchOperationError as exc:
            index = int(exc.error_index or 0)
            status = int(exc.status_code or 0)
            error = map_status(status) or _BatchOperationRejected(status)
            raise BatchFailed(index, error) from None
        return [
            None if operation.kind == "delete" else _clean(result.get("resourceBody") or {})
            for operation, result in zip(operations, results, strict=True)
        ]


class _BatchOperationRejected(Exception):
    """A batch operation failed with a status that has no port error (e.g. 400: malformed item)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"batch operation rejected with status {status}")
        self.status = status


class CosmosDocumentStore:
    """Implements `shared.kernel.documents.DocumentStore` on one Cosmos DB database."""

    def __init__(
        self,
        endpoint: str,
        database: str,
        containers: Mapping[str, ContainerSpec],
        credential: Callable[[], Any],
        *,
        emulator: bool = False,
        provision: bool | None = None,
        throttle_retry: ThrottleRetry | None = None,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        """`credential` is called once, on first use: it returns a key (emulator only) or an async
        token credential, which the store then owns. `emulator` turns TLS verification off (self-signed
        certificate) and allows `ensure_containers()`; `provision=True` allows that on a key-authenticated
        test account too. `client_factory` replaces the SDK client (unit tests)."""
        self.endpoint = endpoint
        self.database_name = database
        self.emulator = emulator
        self.provision = emulator if provision is None else provision
        self._specs = dict(containers)
        self._credential_factory = credential
        self._throttle = throttle_retry or ThrottleRetry()
        self._client_factory = client_factory or self._sdk_client
        self._owned_credential: Any = None
        self._client: Any = None
        self._database: Any = None
        self._container_clients: dict[str, Any] = {}
        self._containers: dict[str, CosmosContainer] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, containers: Mapping[str, ContainerSpec]
    ) -> CosmosDocumentStore:
        from shared.adapters.azure_credentials import azure_credential, cosmos_emulator_key
        from shared.kernel.errors import ConfigError

        if not settings.cosmos_endpoint:
            raise ConfigError("COSMOS__accountEndpoint: required when PSC_STORE=cosmos")
        key = cosmos_emulator_key(settings)

        def credential() -> Any:
            return key if key is not None else azure_credential(settings)

        return cls(
            settings.cosmos_endpoint,
            settings.cosmos_database,
            containers,
            credential,
            emulator=key is not None,
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for `CosmosClient` (exposed so tests can check the retry settings)."""
        options: dict[str, Any] = {
            "retry_throttle_total": self._throttle.max_attempts,
            "retry_throttle_backoff_max": self._throttle.max_wait_seconds,
            "user_agent_suffix": "patient-service-center",
        }
        if self.emulator:
            options["connection_verify"] = False  # the emulator's certificate is self-signed
        return options

    def _sdk_client(self) -> Any:
        from azure.cosmos.aio import CosmosClient

        credential = self._credential_factory()
        if not isinstance(credential, str):
            self._owned_credential = credential
        return CosmosClient(self.endpoint, credential, **self.client_options())

    async def _database_client(self) -> Any:
        if self._database is not None:
            return self._database
        async with self._lock:
            if self._database is None:
                client = self._client_factory()
                try:
                    with _mapped_errors():
                        # __aenter__ reads the account (regions, consistency) so session tokens work.
                        await client.__aenter__()
                except BaseException:
                    await close_quietly(client)
                    await self._close_credential()
                    raise
                self._client = client
                self._database = client.get_database_client(self.database_name)
        return self._database

    async def _container_client(self, name: str) -> Any:
        cached = self._container_clients.get(name)
        if cached is None:
            database = await self._database_client()
            cached = self._container_clients[name] = database.get_container_client(name)
        return cached

    def container(self, name: str) -> CosmosContainer:
        existing = self._containers.get(name)
        if existing is None:
            existing = self._containers[name] = CosmosContainer(self, self._specs[name])
        return existing

    async def ping(self) -> None:
        database = await self._database_client()
        with _mapped_errors():
            await database.read()

    async def ensure_containers(self) -> None:
        """Create the database and catalogue containers — emulator endpoints only (Bicep owns them
        in Azure, and data-plane RBAC could not create them there anyway)."""
        if not self.provision:
            raise RuntimeError("ensure_containers() runs only against the Cosmos DB emulator")
        from azure.cosmos import PartitionKey

        await self._database_client()
        with _mapped_errors():
            database = await self._client.create_database_if_not_exists(id=self.database_name)
            for spec in self._specs.values():
                ttl = {"default_ttl": spec.default_ttl} if spec.default_ttl is not None else {}
                await database.create_container_if_not_exists(
                    id=spec.name, partition_key=PartitionKey(path=spec.partition_key_path), **ttl
                )
        log.info("cosmos emulator containers ensured", extra={"containers": sorted(self._specs)})

    async def delete_database(self) -> None:
        """Drop the whole database — emulator or test accounts only (used by test fixtures)."""
        await self._database_client()
        with _mapped_errors():
            try:
                await self._client.delete_database(self.database_name)
            except CosmosHttpResponseError as exc:
                if exc.status_code != 404:
                    raise

    async def close(self) -> None:
        client, self._client, self._database = self._client, None, None
        self._container_clients.clear()
        if client is not None:
            await close_quietly(client)
        await self._close_credential()

    async def _close_credential(self) -> None:
        credential, self._owned_credential = self._owned_credential, None
        if credential is not None:
            await close_quietly(credential)
