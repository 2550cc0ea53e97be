"""One SQLite file used from asyncio: the plumbing both embedded adapters (store and bus) share.

Operations run inline on the event loop's thread. On a local file a statement takes tens of
microseconds, less than handing it to a worker thread costs once the loop is busy (the hop and
the GIL hand-over dominated: `python -m bench.escalations` routed about 3,800 escalations/min
through a worker thread and about 5,400/min inline, on the same machine). Each call is one
complete operation or transaction, so no lock is ever held across an `await`; a write by another
process can make a call wait up to the busy timeout, which blocks this loop that long (acceptable
for the embedded store of one machine; Azure uses Cosmos DB and Service Bus). WAL mode with a
busy timeout lets several instances and processes share the file; `write` runs an operation in a
`BEGIN IMMEDIATE` transaction, so a check and the write that depends on it are atomic across all
of them. The file is opened (and its schema created) on first use; `close()` is final and
idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from shared.kernel.errors import Unavailable
from shared.kernel.retry import Again, retry_blocking

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLite primary result codes that mean "the file cannot be used right now", not a bug in our SQL.
_UNAVAILABLE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        11,  # SQLITE_CORRUPT
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
        26,  # SQLITE_NOTADB
    }
)
_TRANSIENT_CODES = frozenset({5, 6})  # busy or locked: the connection itself is fine
_SQLITE_BUSY = 5


class SqliteFile:
    """The connection and transactions of one embedded SQLite file.

    `label` names the adapter in errors and logs ("embedded document store"); `schema` holds
    idempotent statements applied in one transaction, recorded as `schema_version` in
    `PRAGMA user_version` (a file written by a newer version is refused).
    """

    def __init__(
        self,
        path: Path,
        *,
        label: str,
        schema: Sequence[str | tuple[int, str]],
        schema_version: int,
        busy_timeout: timedelta,
    ) -> None:
        self.path = Path(path)
        self._label = label
        self._schema = tuple(schema)
        self._schema_version = schema_version
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._conn_closed = False  # set once the connection is closed for good
        self._closed = False

    async def write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` in one `BEGIN IMMEDIATE` transaction: all of it commits, or none."""
        return await self.call(lambda conn: self._transaction(conn, operation))

    async def call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` on the connection (reads, or work that manages its own transaction)."""
        if self._closed:
            raise Unavailable(f"The {self._label} is closed.")
        return self._run(operation)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_connection()

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._conn is None:
                if self._conn_closed:
                    raise Unavailable(f"The {self._label} is closed.")
                self._conn = self._open()
            return operation(self._conn)
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code is None or (code & 0xFF) not in _UNAVAILABLE_CODES:
                raise  # our SQL is wrong: a bug, not an outage
            log.warning(
                self._label + " unavailable", extra={"error_type": getattr(exc, "sqlite_errorname", "")}
            )
            if code & 0xFF not in _TRANSIENT_CODES:
                self._drop_connection()  # reopen on the next call: the file may have been repaired
            raise Unavailable(f"The {self._label} cannot be used right now.") from exc
        except OSError as exc:
            log.warning(self._label + " unavailable", extra={"error_type": type(exc).__name__})
            raise Unavailable(f"The {self._label} cannot be used right now.") from exc

    @staticmethod
    def _transaction(conn: sqlite3.Connection, operation: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = operation(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        timeout = self._busy_timeout.total_seconds()

        def attempt() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            try:
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                self._transaction(conn, self._migrate)
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                # Switching a fresh file to WAL can report BUSY without waiting while another
                # process does the same; retry until the busy timeout is used up.
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_BUSY:
                    raise Again() from exc
                raise
            except BaseException:
                conn.close()
                raise

        try:
            return retry_blocking(attempt, on=(Again,), within=timeout)
        except Again as busy:
            raise busy.__cause__ or busy from None  # still busy: SQLite's own error

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > self._schema_version:
            raise Unavailable(f"{self.path.name} was written by a newer version (schema {version})")
        for statement in self._schema:
            if isinstance(statement, tuple):  # (introduced in version, statement): run once
                since, sql = statement
                if version < since:
                    conn.execute(sql)
            else:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {self._schema_version}")

    def _close_connection(self) -> None:
        self._conn_closed = True
        self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
