"""Embedded specifics of the change feed: the in-place upgrade of a store written before it, and the
read walking its index rather than scanning the container."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.catalog import CONTAINERS
from shared.kernel.clock import ManualClock


def _version_2_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE documents (container TEXT NOT NULL, pk TEXT NOT NULL, id TEXT NOT NULL,"
        " body TEXT NOT NULL, etag TEXT NOT NULL, ts INTEGER NOT NULL, expires_at INTEGER,"
        " PRIMARY KEY (container, pk, id))"
    )
    conn.execute(
        "ALTER TABLE documents ADD COLUMN sort_key"
        " GENERATED ALWAYS AS (json_extract(body, '$.sortKey')) VIRTUAL"
    )
    for n in (1, 2):
        body = json.dumps({"id": f"p{n}", "_etag": "e", "_ts": 0})
        conn.execute(
            "INSERT INTO documents VALUES ('patients', ?, ?, ?, 'e', 0, NULL)", (f"p{n}", f"p{n}", body)
        )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


async def test_a_store_written_before_the_change_feed_is_upgraded_and_replays_every_item_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    _version_2_store(path)
    store = SqliteDocumentStore(path, CONTAINERS, ManualClock())

    old = await store.read_changes("patients")
    await store.container("patients").create({"id": "p3"})
    new = await store.read_changes("patients", after=old.continuation)
    await store.close()

    assert sorted(item["id"] for item in old.items) == ["p1", "p2"]
    assert [item["id"] for item in new.items] == ["p3"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3


async def test_reading_changes_walks_the_change_index(tmp_path: Path) -> None:
    store = SqliteDocumentStore(tmp_path / "s.sqlite3", CONTAINERS, ManualClock())
    await store.container("patients").create({"id": "p1"})
    statements: list[str] = []
    await store._file.call(lambda conn: conn.set_trace_callback(statements.append))

    await store.read_changes("patients", max_items=5)

    sql = next(s for s in statements if s.startswith("SELECT body, lsn"))
    plan = await store._file.call(lambda conn: conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
    details = " ".join(str(row[3]) for row in plan)
    assert "documents_changes" in details
    assert "TEMP B-TREE" not in details
    await store.close()


def test_a_deeply_nested_checkpoint_is_a_bad_request() -> None:
    import base64

    import pytest

    from shared.adapters.sqlite_change_feed import decode_position, encode_position
    from shared.kernel.errors import BadRequest

    assert decode_position("appointments", encode_position("appointments", 7)) == 7
    for text in ["[" * 5_000, '{"v":1,"c":"appointments","lsn":[[1]]}', '{"v":1,"c":"x","c":"y","lsn":1}']:
        with pytest.raises(BadRequest):
            decode_position("appointments", base64.urlsafe_b64encode(text.encode()).decode())
