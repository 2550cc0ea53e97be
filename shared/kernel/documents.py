"""Document store port, shaped after Azure Cosmos DB (NoSQL API) semantics.

Every item is a JSON object with a string `id`; the container's partition-key path names the field
whose value is the item's logical partition. Writes return the stored item with the system fields
`_etag` (opaque, changes on every write) and `_ts` (epoch seconds of the last write).

Errors: `shared.kernel.errors.NotFound` (point read/replace/delete of an absent item), `Conflict` (create
of an existing id in the partition), `PreconditionFailed` (ETag mismatch), `Unavailable`.

`ChangeFeed` is the store's change feed in Cosmos DB's "latest version" mode, for hosts that run
change-feed triggers (the dev host; in Azure the Functions Cosmos DB trigger reads the real one).
Progress is kept in lease documents of the `leases` container (partition key `/id`), written with
ETags through the ordinary `Container` port, so two hosts can never both own a lease.

Queries are structured (`Query`), not SQL strings: the Cosmos adapter renders them as parameterised
SQL (values always as `@pN` parameters, field paths validated), the embedded adapter as SQLite
JSON expressions. That keeps one query meaning on both backends and makes injection impossible.

Paging. `query` (one logical partition) pages in any order: pass the previous page's
`continuation` to get the next. Across partitions Cosmos DB can resume only a *streamable* query
(no ORDER BY), and then the order is by physical partition, meaningful to no one. For a
cross-partition ORDER BY the SDK hands every partition range's producer the same options, the
caller's continuation included (azure-cosmos 4.17, `_MultiExecutionContextAggregator`), and the
token it hands out is just the last range's: the service answers 400 "Invalid Continuation Token"
or items are skipped (Azure/azure-sdk-for-python#41434, #37230). So every adapter refuses, with
`UnpageableQuery`:

* `query_cross_partition` with `order_by` and a `continuation`, before any request;
* `query_cross_partition` with `order_by` whose matches do not all fit in `max_items`: rather
  than hand out a token Cosmos DB could not honour, such a query must fit one page, and one that
  does not raises once it has seen `max_items + 1` matches.

A list that pages in a stable order therefore reads one partition: its aggregate's own, or an
index partitioned by the list's key (`shared/kernel/lists.py`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Item = dict[str, Any]

FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_field_path(path: str) -> str:
    if not FIELD_PATH.match(path):
        raise ValueError(f"invalid field path {path!r}")
    return path


@dataclass(frozen=True)
class FullTextPath:
    """A full-text indexed path and its analyser language (`en-US`). `preview_language`: the
    analyser to use where the account has Cosmos DB's preview languages enabled (Bicep decides)."""

    path: str
    language: str = "en-US"
    preview_language: str | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """A container the code uses; infra must declare the same (tests compare them).

    `default_ttl`: None = TTL off (an item's `ttl` is ignored, as in Cosmos); -1 = on, items live
    forever unless they carry `ttl`; n > 0 = items expire n seconds after their last write unless
    their own `ttl` says otherwise (`ttl: -1` = never).
    """

    name: str
    partition_key_path: str
    default_ttl: int | None = None
    description: str = ""
    # Paths Cosmos DB full-text indexes (its `fullTextPolicy` and `fullTextIndexes`): the Search
    # port's container only (shared/adapters/cosmos_search.py).
    full_text: tuple[FullTextPath, ...] = ()

    @property
    def partition_key_field(self) -> str:
        return self.partition_key_path.lstrip("/").replace("/", ".")


Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "defined", "undefined", "contains"]


@dataclass(frozen=True)
class Condition:
    """`field op value`. `in` takes a sequence; `defined`/`undefined` take no value;
    `contains` tests membership of `value` in an array field."""

    field: str
    op: Op
    value: Any = None

    def __post_init__(self) -> None:
        check_field_path(self.field)
        if self.op == "in" and (isinstance(self.value, str | bytes) or not isinstance(self.value, Sequence)):
            raise ValueError("'in' needs a sequence of values")


def where(field: str, op: Op, value: Any = None) -> Condition:
    return Condition(field, op, value)


@dataclass(frozen=True)
class Query:
    """Conjunction of conditions and an optional ordering: (field path, descending?).

    A top-level string field named `sortKey` is indexed by every backend (Cosmos DB indexes all
    paths; the embedded store indexes just this one): range it and order by it to read the first
    page of a big partition without sorting the partition."""

    conditions: tuple[Condition, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()

    def __post_init__(self) -> None:
        for path, _ in self.order_by:
            check_field_path(path)


class UnpageableQuery(ValueError):
    """A cross-partition ORDER BY query asked to resume from a continuation, or matched more than
    one page: Cosmos DB cannot page it (see the module docstring). A programming error, never the
    caller's input: page one partition or an index instead."""


def refuse_unpageable(query: Query, continuation: str | None) -> None:
    """What every adapter checks before running a cross-partition query."""
    if query.order_by and continuation is not None:
        raise UnpageableQuery(
            "Cosmos DB cannot resume a cross-partition ORDER BY query from a continuation token; "
            "page one partition or an index partitioned by the list's key."
        )


def too_many_to_order(max_items: int) -> UnpageableQuery:
    return UnpageableQuery(
        f"A cross-partition ORDER BY query matched more than max_items={max_items} items and Cosmos "
        "DB cannot page it; page one partition or an index partitioned by the list's key."
    )


@dataclass(frozen=True)
class Page:
    items: list[Item]
    continuation: str | None = None


@dataclass(frozen=True)
class BatchOperation:
    """One operation of a transactional batch (all in the batch's partition)."""

    kind: Literal["create", "replace", "upsert", "delete", "read"]
    item: Item | None = None
    id: str | None = None
    etag: str | None = None

    @staticmethod
    def create(item: Item) -> BatchOperation:
        return BatchOperation("create", item=item)

    @staticmethod
    def replace(item: Item, etag: str | None = None) -> BatchOperation:
        return BatchOperation("replace", item=item, etag=etag)

    @staticmethod
    def upsert(item: Item, etag: str | None = None) -> BatchOperation:
        return BatchOperation("upsert", item=item, etag=etag)

    @staticmethod
    def delete(id: str, etag: str | None = None) -> BatchOperation:
        return BatchOperation("delete", id=id, etag=etag)

    @staticmethod
    def read(id: str) -> BatchOperation:
        return BatchOperation("read", id=id)


class BatchFailed(Exception):
    """The batch was rolled back because operation `index` failed with `error`."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"batch operation {index} failed: {type(error).__name__}")
        self.index = index
        self.error = error


@runtime_checkable
class Container(Protocol):
    spec: ContainerSpec

    async def create(self, item: Item) -> Item:
        """Insert; `Conflict` if the id exists in the item's partition."""
        ...

    async def read(self, id: str, partition_key: str) -> Item:
        """Point read; `NotFound` if absent or expired."""
        ...

    async def replace(self, item: Item, *, etag: str | None = None) -> Item:
        """Replace an existing item; `NotFound` if absent; `PreconditionFailed` if `etag` is given
        and differs from the stored one."""
        ...

    async def upsert(self, item: Item, *, etag: str | None = None) -> Item:
        """Create or replace. With `etag`: a conditional replace when the item exists, a create
        when it is absent (Cosmos applies If-Match only to existing items)."""
        ...

    async def delete(self, id: str, partition_key: str, *, etag: str | None = None) -> None: ...

    async def query(
        self,
        query: Query,
        *,
        partition_key: str,
        max_items: int = 100,
        continuation: str | None = None,
    ) -> Page:
        """Query inside one logical partition. Pass `continuation` from the previous page; a
        malformed or foreign token raises `BadRequest`. Paging sees items added between pages
        that sort after the last item returned, and never repeats or skips an unchanged one.
        Tokens stay short (Cosmos DB: capped at 1 KB; embedded: the last item's sort values), so
        callers may wrap them in their own."""
        ...

    async def count(self, query: Query, *, partition_key: str) -> int:
        """How many items of one logical partition match (`order_by` is ignored). Cosmos DB answers
        `SELECT VALUE COUNT(1)` from the index without loading the items: what a position in a
        long list costs (bot callbacks' queue position)."""
        ...

    async def query_cross_partition(
        self, query: Query, *, max_items: int = 100, continuation: str | None = None
    ) -> Page:
        """Fan-out query over all partitions: costly in Cosmos DB, so it is never implicit. Without
        `order_by` it pages like `query`; with `order_by` it takes no `continuation` and must match
        at most `max_items` items, else `UnpageableQuery` (module docstring)."""
        ...

    async def batch(self, partition_key: str, operations: Sequence[BatchOperation]) -> list[Item | None]:
        """All-or-nothing in one partition (at most 100 operations). Returns each operation's item
        (None for delete). Raises `BatchFailed` and leaves nothing changed if any operation fails."""
        ...


@dataclass(frozen=True)
class ChangeBatch:
    """Changed items in the order they were last written, and the position after them."""

    items: list[Item]
    continuation: str


@runtime_checkable
class ChangeFeed(Protocol):
    """What changed in a container, as Cosmos DB's change feed in latest-version mode shows it: an
    item created or replaced appears once, at its latest version, after everything written before
    it (so in order within its logical partition); an item changed twice between two reads appears
    once; deletes and TTL expiries do not appear at all. Items carry `_lsn`, the position of their
    last write."""

    async def read_changes(
        self, container: str, *, after: str | None = None, max_items: int = 100
    ) -> ChangeBatch:
        """Up to `max_items` items changed after the position `after` (None: from the beginning).
        Pass the batch's `continuation` next time; a malformed or foreign one raises `BadRequest`."""
        ...

    async def change_feed_position(self, container: str) -> str:
        """The position now: reading after it returns only changes written later (a change-feed
        trigger's first read without `start_from_beginning`)."""
        ...


@runtime_checkable
class DocumentStore(Protocol):
    def container(self, name: str) -> Container:
        """The container named in the catalogue; `KeyError` for an unknown name."""
        ...

    async def ping(self) -> None:
        """Raise `Unavailable` if the store cannot be reached."""
        ...

    async def close(self) -> None: ...


MAX_BATCH_OPERATIONS = 100
