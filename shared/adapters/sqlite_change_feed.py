"""The embedded store's change feed: Cosmos DB's latest-version change feed on the documents table.

Every create, replace or upsert stamps the row with the next value of one file-wide counter
(`lsn`), inside the write's own transaction. Writes serialise on SQLite's write lock, so positions
are handed out in commit order: a reader that has seen position n has seen every write before it,
and a change committed later always gets a higher position. Reading changes is then
`lsn > position ORDER BY lsn` on an index. An item written twice keeps only its latest position
(latest version); a deleted row is gone, and an expired one is filtered out, so neither appears.

Schema version 3 adds the column and the counter in place; items written before it get positions
in their storage order, so a consumer starting from the beginning sees each of them once.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from typing import Any

from shared.kernel.documents import ChangeBatch, Item
from shared.kernel.errors import BadRequest
from shared.kernel.json_reader import read_json

SCHEMA_VERSION = 3
SCHEMA: tuple[str | tuple[int, str], ...] = (
    (3, "ALTER TABLE documents ADD COLUMN lsn INTEGER NOT NULL DEFAULT 0"),
    (3, "UPDATE documents SET lsn = rowid"),
    "CREATE TABLE IF NOT EXISTS change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), lsn INTEGER NOT NULL)",
    (3, "INSERT INTO change_counter (id, lsn) SELECT 1, COALESCE(MAX(lsn), 0) FROM documents"),
    "CREATE INDEX IF NOT EXISTS documents_changes ON documents (container, lsn)",
)
_TOKEN_VERSION = 1


def next_lsn(conn: sqlite3.Connection) -> int:
    """The position of the write being made (inside its transaction)."""
    row = conn.execute("UPDATE change_counter SET lsn = lsn + 1 WHERE id = 1 RETURNING lsn").fetchone()
    return int(row[0])


def encode_position(container: str, lsn: int) -> str:
    payload = json.dumps({"v": _TOKEN_VERSION, "c": container, "lsn": lsn}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_position(container: str, token: str | None) -> int:
    if token is None:
        return 0
    invalid = BadRequest("The change feed continuation is not valid for this container.")
    try:
        # Checkpoints come back from a lease store: the bounded reader, as for every token.
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload: Any = read_json(raw, max_bytes=1024, max_depth=1)
    except (binascii.Error, ValueError):
        raise invalid from None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != _TOKEN_VERSION
        or payload.get("c") != container
        or not isinstance(payload.get("lsn"), int)
    ):
        raise invalid
    return int(payload["lsn"])


def read_changes(
    conn: sqlite3.Connection, container: str, after: int, max_items: int, now: float, ttl_on: bool
) -> ChangeBatch:
    expiry = " AND (expires_at IS NULL OR expires_at > ?)" if ttl_on else ""
    params: list[Any] = [container, after]
    if ttl_on:
        params.append(now)
    params.append(max_items)
    rows = conn.execute(
        f"SELECT body, lsn FROM documents WHERE container = ? AND lsn > ?{expiry} ORDER BY lsn LIMIT ?",  # noqa: S608
        params,
    ).fetchall()
    items: list[Item] = []
    for row in rows:
        item: Item = json.loads(row["body"])
        item["_lsn"] = row["lsn"]
        items.append(item)
    last = rows[-1]["lsn"] if rows else after
    return ChangeBatch(items=items, continuation=encode_position(container, last))


def position_now(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT lsn FROM change_counter WHERE id = 1").fetchone()[0])
