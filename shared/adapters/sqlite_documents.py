"""Embedded document store: Azure Cosmos DB (NoSQL API) item semantics on one SQLite file.

Why SQLite: the embedded default must run on a laptop with nothing installed, keep its data across
restarts of the dev host, and let several processes (function instances, a CLI, a test runner) share
one store. SQLite in WAL mode gives durable, serialisable transactions across processes with no
server; every write runs inside `BEGIN IMMEDIATE`, so an ETag check and the write it guards are one
atomic step even when two processes race for the same item. Its JSON functions (`json_extract`,
`json_type`, `json_each`) evaluate the port's structured queries in SQL, with every value bound as a
parameter.

What matches Cosmos DB: ids are unique per (container, partition key); `_etag` (a new quoted opaque
value on every write) and `_ts` (epoch seconds of the last write) are stored and returned; create /
read / replace / upsert / delete with `If-Match` ETags raise the same port errors; TTL follows the
container's `default_ttl` and the item's `ttl` (measured from `_ts`); transactional batches are
all-or-nothing inside one partition with at most 100 operations; items over 2 MB are refused.
Query comparisons follow Cosmos typing: a comparison with an undefined field or a value of another
JSON type is undefined (no match); booleans compare as booleans (false < true); `!=` also needs
matching types; `= null`, `<= null` and `>= null` match JSON nulls, the other operators never do.

Differences worth knowing:
- Time is the injected Clock's. Expired items vanish from reads, queries and replaces at once, and
  their rows are purged lazily (by later writes in the container, or by `purge_expired()`), not by
  a background sweeper; an id whose item expired can be created again straight away. Turning a
  container's TTL off (`default_ttl=None`) stops expiry at once, as in Cosmos DB; the expiry
  stored with each item counts again only if TTL is turned back on.
- Partition-key values must be strings (the port reads and deletes by a string key) and ids must
  be what Cosmos DB accepts (1-255 characters, no `/ \\ ? #`); anything else is a `ValueError`.
- Upsert with an ETag on an absent (or expired) item creates it, as Cosmos DB does (If-Match only
  applies when the item exists).
- Query values must be JSON scalars (str, int, float, bool, None); `in` takes a sequence of them
  and `contains` tests an array field for one of them. Cosmos would also compare whole objects and
  arrays; our services never need it, and refusing it keeps both backends identical.
- ORDER BY sorts mixed types as undefined < null < booleans < numbers < strings < arrays < objects,
  so items without the field come first ascending and last descending (Cosmos DB's order for a
  single-field ORDER BY; a multi-field ORDER BY in Cosmos needs a composite index and may leave out
  items with undefined fields). Strings compare by UTF-8 bytes. Ties break by partition key, then
  id, so paging is stable; without ORDER BY results come in (partition key, id) order.
- Continuation tokens are keyset positions (the last item's sort keys): paging never skips or
  repeats an item that stays unchanged, even if others are added or removed between pages. A token
  is bound to its container, scope and query; any other use raises `BadRequest`.
- A cross-partition query with ORDER BY is refused (`UnpageableQuery`) when it is given a
  continuation or matches more than one page, exactly where Cosmos DB could not page it; the
  keyset tokens could, but the dev host and the tests must catch what Azure would break on.
- Batches longer than 100 operations raise `ValueError` before anything runs (a programming error;
  the Cosmos adapter does the same). A batch operation whose item belongs to another partition
  fails with `BadRequest` at its index.
- Durability is `synchronous=NORMAL` in WAL mode: a committed write survives a process crash, not
  necessarily a power cut.

It also implements the `ChangeFeed` port (latest-version mode; see `sqlite_change_feed`).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.adapters import sqlite_change_feed as change_feed
from shared.adapters.sqlite_file import SqliteFile
from shared.adapters.sqlite_query import (
    SORT_KEY,
    _after,
    _decode_token,
    _encode_token,
    _fingerprint,
    _sort_keys,
    render_condition,
)
from shared.kernel.clock import Clock
from shared.kernel.documents import (
    MAX_BATCH_OPERATIONS,
    BatchFailed,
    BatchOperation,
    ChangeBatch,
    ContainerSpec,
    Item,
    Page,
    Query,
    refuse_unpageable,
    too_many_to_order,
)
from shared.kernel.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, PreconditionFailed

log = logging.getLogger(__name__)


MAX_ITEM_BYTES = 2 * 1024 * 1024  # Cosmos DB's item size limit
MAX_ID_LENGTH = 255
_FORBIDDEN_ID_CHARACTERS = frozenset("/\\?#")
# Cosmos bookkeeping that may arrive on an item read from Cosmos and written back; never stored.
_SYSTEM_FIELDS = ("_etag", "_ts", "_rid", "_self", "_attachments", "_lsn")
_PURGE_BATCH = 64

_SCHEMA_VERSION = change_feed.SCHEMA_VERSION  # 3: the change feed's positions
# `expires_at` is epoch seconds (`_ts` + effective ttl), NULL when the item never expires.
_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS documents (
        container TEXT NOT NULL,
        pk TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        etag TEXT NOT NULL,
        ts INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (container, pk, id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS documents_expiry ON documents (container, expires_at) "
    "WHERE expires_at IS NOT NULL",
    # The one indexed document field (see SORT_KEY): ordered pages of a big partition, such as a
    # queue's waiting conversations, walk this index instead of sorting the partition.
    (
        2,
        "ALTER TABLE documents ADD COLUMN sort_key "
        f"GENERATED ALWAYS AS (json_extract(body, '$.{SORT_KEY}')) VIRTUAL",
    ),
    (2, "CREATE INDEX IF NOT EXISTS documents_sort ON documents (container, pk, sort_key, id)"),
    *change_feed.SCHEMA,
)

# ---------------------------------------------------------------------------------------------------
# Item preparation


@dataclass(frozen=True)
class _Prepared:
    """An item ready to store: its keys, JSON body (with system fields) and expiry."""

    pk: str
    id: str
    body: str
    etag: str
    ts: int
    expires_at: int | None


def _check_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("an item needs a non-empty string 'id'")
    if len(value) > MAX_ID_LENGTH or any(ch in _FORBIDDEN_ID_CHARACTERS for ch in value):
        raise ValueError(f"item ids are at most {MAX_ID_LENGTH} characters without '/', '\\', '?' or '#'")
    return value


def partition_key_of(spec: ContainerSpec, item: Mapping[str, Any]) -> str:
    """The item's partition-key value (`/owner/id` → item["owner"]["id"]); `ValueError` if absent."""
    value: Any = item
    for part in spec.partition_key_field.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ValueError(f"item has no partition key {spec.partition_key_path!r}")
        value = value[part]
    if not isinstance(value, str):
        raise ValueError(f"partition key {spec.partition_key_path!r} must be a string")
    return value


def _expiry(spec: ContainerSpec, item: Mapping[str, Any], ts: int) -> int | None:
    if spec.default_ttl is None:
        return None  # TTL off for the container: an item's own `ttl` is ignored, as in Cosmos
    ttl: Any = item.get("ttl", spec.default_ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or (ttl < 1 and ttl != -1):
        raise ValueError("an item's 'ttl' must be -1 (never expires) or a positive number of seconds")
    return None if ttl == -1 else ts + ttl


def _prepare(spec: ContainerSpec, item: Mapping[str, Any], now: float) -> tuple[_Prepared, Item]:
    if not isinstance(item, Mapping):
        raise TypeError("an item must be a JSON object (a mapping)")
    item_id = _check_id(item.get("id"))
    pk = partition_key_of(spec, item)
    ts = math.floor(now)
    etag = f'"{uuid.uuid4()}"'
    stored = {key: value for key, value in item.items() if key not in _SYSTEM_FIELDS}
    stored["_etag"] = etag
    stored["_ts"] = ts
    body = json.dumps(stored, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(body.encode()) > MAX_ITEM_BYTES:
        raise PayloadTooLarge("The item exceeds the 2 MB document size limit.")
    prepared = _Prepared(pk, item_id, body, etag, ts, _expiry(spec, item, ts))
    # Hand back what a read would return (tuples as lists, etc.), never the caller's own objects.
    result: Item = json.loads(body)
    return prepared, result


# ---------------------------------------------------------------------------------------------------
# Adapter


def _not_found() -> NotFound:
    return NotFound("The item does not exist.")


def _stale() -> PreconditionFailed:
    return PreconditionFailed("The item was changed by someone else (ETag mismatch).")


class SqliteContainer:
    """One catalogue container inside a `SqliteDocumentStore`; implements the `Container` port."""

    def __init__(self, store: SqliteDocumentStore, spec: ContainerSpec) -> None:
        self.spec = spec
        self._store = store
        self._file = store._file

    # ---- point operations ----------------------------------------------------------------------

    async def create(self, item: Item) -> Item:
        now = self._now()
        prepared, result = _prepare(self.spec, item, now)
        await self._file.write(lambda conn: self._create(conn, prepared, now))
        return result

    async def read(self, id: str, partition_key: str) -> Item:
        now = self._now()

        def read(conn: sqlite3.Connection) -> Item:
            row = self._load(conn, partition_key, id, now)
            if row is None:
                raise _not_found()
            body: Item = json.loads(row["body"])
            return body

        return await self._file.call(read)

    async def replace(self, item: Item, *, etag: str | None = None) -> Item:
        now = self._now()
        prepared, result = _prepare(self.spec, item, now)
        await self._file.write(lambda conn: self._replace(conn, prepared, etag, now))
        return result

    async def upsert(self, item: Item, *, etag: str | None = None) -> Item:
        now = self._now()
        prepared, result = _prepare(self.spec, item, now)
        await self._file.write(lambda conn: self._upsert(conn, prepared, etag, now))
        return result

    async def delete(self, id: str, partition_key: str, *, etag: str | None = None) -> None:
        now = self._now()
        await self._file.write(lambda conn: self._delete(conn, partition_key, id, etag, now))

    # ---- queries -------------------------------------------------------------------------------

    async def query(
        self,
        query: Query,
        *,
        partition_key: str,
        max_items: int = 100,
        continuation: str | None = None,
    ) -> Page:
        return await self._page(query, partition_key, max_items, continuation)

    async def count(self, query: Query, *, partition_key: str) -> int:
        params: list[Any] = [self.spec.name, partition_key]
        where = ["container = ?", "pk = ?"]
        if self.spec.default_ttl is not None:
            where.append("(expires_at IS NULL OR expires_at > ?)")
            params.append(self._now())
        where.extend(render_condition(condition, params) for condition in query.conditions)
        sql = f"SELECT COUNT(*) FROM documents WHERE {' AND '.join(where)}"  # noqa: S608 - fixed fragments only

        def run(conn: sqlite3.Connection) -> int:
            return int(conn.execute(sql, params).fetchone()[0])

        return await self._file.call(run)

    async def query_cross_partition(
        self, query: Query, *, max_items: int = 100, continuation: str | None = None
    ) -> Page:
        # As strict as Cosmos DB, which cannot page a cross-partition ORDER BY (port docstring).
        refuse_unpageable(query, continuation)
        page = await self._page(query, None, max_items, continuation)
        if query.order_by and page.continuation is not None:
            raise too_many_to_order(max_items)
        return page

    async def _page(
        self, query: Query, partition_key: str | None, max_items: int, continuation: str | None
    ) -> Page:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        keys = _sort_keys(query)
        params: list[Any] = []
        columns = ", ".join(f"{key.sql} AS k{index}" for index, key in enumerate(keys))
        for key in keys:
            params.extend(key.params)
        where = ["container = ?"]
        params.append(self.spec.name)
        if self.spec.default_ttl is not None:
            where.append("(expires_at IS NULL OR expires_at > ?)")
            params.append(self._now())
        if partition_key is not None:
            where.append("pk = ?")
            params.append(partition_key)
        # Conditions first: a bad query value is a ValueError before any token is looked at.
        where.extend(render_condition(condition, params) for condition in query.conditions)
        fingerprint = _fingerprint(self.spec.name, partition_key, query)
        last = _decode_token(continuation, fingerprint, len(keys)) if continuation is not None else None
        if last is not None:
            where.append(_after(keys, last, params))
        order = ", ".join(f"k{index} {'DESC' if key.descending else 'ASC'}" for index, key in enumerate(keys))
        # Only fixed SQL fragments are formatted in; every value (paths included) is a bound parameter.
        condition_sql = " AND ".join(where)
        sql = f"SELECT body, {columns} FROM documents WHERE {condition_sql} ORDER BY {order} LIMIT ?"  # noqa: S608
        params.append(max_items + 1)

        def run(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(sql, params).fetchall()

        rows = await self._file.call(run)
        token = None
        if len(rows) > max_items:
            rows = rows[:max_items]
            token = _encode_token(fingerprint, [rows[-1][f"k{i}"] for i in range(len(keys))])
        return Page(items=[json.loads(row["body"]) for row in rows], continuation=token)

    # ---- batch ---------------------------------------------------------------------------------

    async def batch(self, partition_key: str, operations: Sequence[BatchOperation]) -> list[Item | None]:
        if len(operations) > MAX_BATCH_OPERATIONS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_OPERATIONS} operations")
        if not operations:
            return []
        now = self._now()
        return await self._file.write(lambda conn: self._batch(conn, partition_key, operations, now))

    def _batch(
        self,
        conn: sqlite3.Connection,
        partition_key: str,
        operations: Sequence[BatchOperation],
        now: float,
    ) -> list[Item | None]:
        results: list[Item | None] = []
        for index, operation in enumerate(operations):
            try:
                results.append(self._batch_operation(conn, partition_key, operation, now))
            except (BadRequest, NotFound, Conflict, PreconditionFailed, PayloadTooLarge) as exc:
                raise BatchFailed(index, exc) from None
            except (ValueError, TypeError) as exc:
                raise BatchFailed(index, BadRequest(str(exc))) from None
        return results

    def _batch_operation(
        self, conn: sqlite3.Connection, partition_key: str, operation: BatchOperation, now: float
    ) -> Item | None:
        if operation.kind in ("read", "delete"):
            if operation.id is None:
                raise ValueError(f"a batch {operation.kind} needs an id")
            if operation.kind == "delete":
                self._delete(conn, partition_key, operation.id, operation.etag, now)
                return None
            row = self._load(conn, partition_key, operation.id, now)
            if row is None:
                raise _not_found()
            body: Item = json.loads(row["body"])
            return body
        if operation.item is None:
            raise ValueError(f"a batch {operation.kind} needs an item")
        prepared, result = _prepare(self.spec, operation.item, now)
        if prepared.pk != partition_key:
            raise BadRequest("The item's partition key differs from the batch's.")
        match operation.kind:
            case "create":
                self._create(conn, prepared, now)
            case "replace":
                self._replace(conn, prepared, operation.etag, now)
            case "upsert":
                self._upsert(conn, prepared, operation.etag, now)
            case _:
                raise ValueError(f"unsupported batch operation {operation.kind!r}")
        return result

    # ---- statements (inside a write transaction where they write) ---------------

    def _now(self) -> float:
        return self._store._clock.now().timestamp()

    def _load(self, conn: sqlite3.Connection, pk: str, id: str, now: float) -> sqlite3.Row | None:
        """The stored row, or None when absent or expired."""
        row: sqlite3.Row | None = conn.execute(
            "SELECT body, etag, expires_at FROM documents WHERE container = ? AND pk = ? AND id = ?",
            (self.spec.name, pk, id),
        ).fetchone()
        # With TTL off an old expiry is void: Cosmos stops expiring items when TTL is turned off.
        if row is None or self.spec.default_ttl is None or row["expires_at"] is None:
            return row
        return row if row["expires_at"] > now else None

    def _insert_or_overwrite(self, conn: sqlite3.Connection, doc: _Prepared, now: float) -> None:
        conn.execute(
            "INSERT INTO documents (container, pk, id, body, etag, ts, expires_at, lsn) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (container, pk, id) DO UPDATE SET body = excluded.body, etag = excluded.etag, "
            "ts = excluded.ts, expires_at = excluded.expires_at, lsn = excluded.lsn",
            (
                self.spec.name,
                doc.pk,
                doc.id,
                doc.body,
                doc.etag,
                doc.ts,
                doc.expires_at,
                change_feed.next_lsn(conn),
            ),
        )
        self._purge_some(conn, now)

    def _create(self, conn: sqlite3.Connection, doc: _Prepared, now: float) -> None:
        # An expired row still occupies the key until purged: the new item simply takes its place.
        if self._load(conn, doc.pk, doc.id, now) is not None:
            raise Conflict("An item with this id already exists in the partition.")
        self._insert_or_overwrite(conn, doc, now)

    def _replace(self, conn: sqlite3.Connection, doc: _Prepared, etag: str | None, now: float) -> None:
        row = self._load(conn, doc.pk, doc.id, now)
        if row is None:
            raise _not_found()
        if etag is not None and row["etag"] != etag:
            raise _stale()
        self._insert_or_overwrite(conn, doc, now)

    def _upsert(self, conn: sqlite3.Connection, doc: _Prepared, etag: str | None, now: float) -> None:
        row = self._load(conn, doc.pk, doc.id, now)
        if etag is not None and row is not None and row["etag"] != etag:
            raise _stale()
        self._insert_or_overwrite(conn, doc, now)

    def _delete(self, conn: sqlite3.Connection, pk: str, id: str, etag: str | None, now: float) -> None:
        row = self._load(conn, pk, id, now)
        if row is None:
            raise _not_found()
        if etag is not None and row["etag"] != etag:
            raise _stale()
        conn.execute(
            "DELETE FROM documents WHERE container = ? AND pk = ? AND id = ?", (self.spec.name, pk, id)
        )
        self._purge_some(conn, now)

    def _purge_some(self, conn: sqlite3.Connection, now: float) -> None:
        # Lazy TTL purge: each write clears a few expired rows of its container (bounded work).
        if self.spec.default_ttl is None:
            return
        conn.execute(
            "DELETE FROM documents WHERE rowid IN (SELECT rowid FROM documents "
            "WHERE container = ? AND expires_at <= ? LIMIT ?)",
            (self.spec.name, now, _PURGE_BATCH),
        )


class SqliteDocumentStore:
    """Cosmos DB item semantics on one SQLite file; implements the `DocumentStore` port.

    SQLite work runs inline, one complete operation per call (see `sqlite_file`), so any number of
    tasks may share the store. Several instances (and processes) may share the
    file: writes serialise on SQLite's write lock. The file is created on first use; `close()` is
    final and idempotent.
    """

    def __init__(
        self,
        path: Path,
        containers: Mapping[str, ContainerSpec],
        clock: Clock,
        *,
        busy_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        for spec in containers.values():
            if spec.default_ttl is not None and spec.default_ttl != -1 and spec.default_ttl < 1:
                raise ValueError(f"container {spec.name!r}: default_ttl must be None, -1 or positive")
        self._file = SqliteFile(
            path,
            label="embedded document store",
            schema=_SCHEMA,
            schema_version=_SCHEMA_VERSION,
            busy_timeout=busy_timeout,
        )
        self._specs = dict(containers)
        self._clock = clock
        self._containers: dict[str, SqliteContainer] = {}

    @property
    def path(self) -> Path:
        return self._file.path

    def container(self, name: str) -> SqliteContainer:
        container = self._containers.get(name)
        if container is None:
            try:
                spec = self._specs[name]
            except KeyError:
                raise KeyError(f"unknown container {name!r}; add it to the container catalogue") from None
            container = self._containers[name] = SqliteContainer(self, spec)
        return container

    async def ping(self) -> None:
        await self._file.call(lambda conn: conn.execute("SELECT 1").fetchone())

    async def purge_expired(self) -> int:
        """Delete every expired item now (they are already invisible); returns how many."""
        now = self._clock.now().timestamp()
        with_ttl = [spec.name for spec in self._specs.values() if spec.default_ttl is not None]

        def purge(conn: sqlite3.Connection) -> int:
            purged = 0
            for name in with_ttl:
                cursor = conn.execute(
                    "DELETE FROM documents WHERE container = ? AND expires_at <= ?", (name, now)
                )
                purged += cursor.rowcount
            return purged

        return await self._file.write(purge)

    async def read_changes(
        self, container: str, *, after: str | None = None, max_items: int = 100
    ) -> ChangeBatch:
        spec = self.container(container).spec
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        position = change_feed.decode_position(container, after)
        now, ttl_on = self._clock.now().timestamp(), spec.default_ttl is not None
        return await self._file.call(
            lambda conn: change_feed.read_changes(conn, container, position, max_items, now, ttl_on)
        )

    async def change_feed_position(self, container: str) -> str:
        self.container(container)
        lsn = await self._file.call(change_feed.position_now)
        return change_feed.encode_position(container, lsn)

    async def close(self) -> None:
        await self._file.close()
