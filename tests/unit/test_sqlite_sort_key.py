"""The embedded store's one indexed field, `sortKey`: ordered, ranged pages of a big partition
walk an index instead of sorting the partition (what keeps an assignment decision flat)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.catalog import CONTAINERS
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query, where

RANGE = Query((where("sortKey", ">=", "w|"), where("sortKey", "<", "w}")), order_by=(("sortKey", False),))


async def test_sort_key_ranges_and_orders_a_partition(tmp_path: Path) -> None:
    store = SqliteDocumentStore(tmp_path / "s.sqlite3", CONTAINERS, ManualClock())
    routing = store.container("routing")
    for n in (5, 1, 3, 2, 4):
        await routing.create({"id": f"w{n}", "queueId": "q", "sortKey": f"w|{n}"})
    await routing.create({"id": "s1", "queueId": "q", "sortKey": "s|1"})
    await routing.create({"id": "none", "queueId": "q"})
    await routing.create({"id": "other", "queueId": "r", "sortKey": "w|0"})
    first = await routing.query(RANGE, partition_key="q", max_items=2)
    assert [d["id"] for d in first.items] == ["w1", "w2"]
    rest = await routing.query(RANGE, partition_key="q", max_items=10, continuation=first.continuation)
    assert [d["id"] for d in rest.items] == ["w3", "w4", "w5"]
    await store.close()


async def test_the_query_walks_the_index(tmp_path: Path) -> None:
    store = SqliteDocumentStore(tmp_path / "s.sqlite3", CONTAINERS, ManualClock())
    routing = store.container("routing")
    await routing.create({"id": "w1", "queueId": "q", "sortKey": "w|1"})
    statements: list[str] = []
    await store._file.call(lambda conn: conn.set_trace_callback(statements.append))
    await routing.query(RANGE, partition_key="q", max_items=5)
    sql = next(s for s in statements if s.startswith("SELECT body"))
    plan = await store._file.call(lambda conn: conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
    details = " ".join(str(row[3]) for row in plan)
    assert "USING INDEX documents_sort" in details
    assert "TEMP B-TREE" not in details  # no sort of the partition
    await store.close()


async def test_a_store_written_before_the_index_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE documents (container TEXT NOT NULL, pk TEXT NOT NULL, id TEXT NOT NULL,"
        " body TEXT NOT NULL, etag TEXT NOT NULL, ts INTEGER NOT NULL, expires_at INTEGER,"
        " PRIMARY KEY (container, pk, id))"
    )
    body = json.dumps({"id": "w1", "queueId": "q", "sortKey": "w|1"})
    conn.execute("INSERT INTO documents VALUES ('routing', 'q', 'w1', ?, 'e', 0, NULL)", (body,))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = SqliteDocumentStore(path, CONTAINERS, ManualClock())
    page = await store.container("routing").query(RANGE, partition_key="q")
    assert [d["id"] for d in page.items] == ["w1"]
    await store.close()
