"""The outbox: an aggregate's change and its events are one transaction, the version names them,
and nothing of a change that fails is written."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from bench.counting import CountingStore
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.clock import ManualClock
from shared.kernel.documents import ContainerSpec, Query
from shared.kernel.errors import PreconditionFailed
from shared.kernel.outbox import EVENT_TTL, Aggregate, Aggregates, ChildConflict, event_message
from shared.kernel.stored import Document, Stored

SPECS = {"orders": ContainerSpec("orders", "/conversationId", default_ttl=-1)}


class Order(Aggregate):
    PARTITION_FIELD: ClassVar[str] = "conversationId"

    type: Literal["order"] = "order"
    conversation_id: str
    state: str = "new"


class Line(Document):
    type: Literal["line"] = "line"
    conversation_id: str
    text: str


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    inner = SqliteDocumentStore(tmp_path / "store.sqlite3", SPECS, ManualClock())
    yield CountingStore(inner)
    await inner.close()


async def everything(store: CountingStore) -> dict[str, dict[str, object]]:
    page = await store.container("orders").query(Query(), partition_key="o-1", max_items=100)
    return {item["id"]: item for item in page.items}


async def test_a_change_and_its_events_are_written_in_one_batch_named_by_the_version(
    store: CountingStore,
) -> None:
    orders = Aggregates(store, "orders", Order)
    created = await orders.create(
        Order(id="o-1", conversation_id="o-1").emit("order.placed", "2026-01-05T09:00:00.000Z", lines=1)
    )
    assert (created.version, created.pending_events) == (1, ())
    changed = await orders.replace(
        created.changed(state="paid")
        .emit("order.paid", "2026-01-05T09:01:00.000Z", amount=3)
        .emit("order.shipped", "2026-01-05T09:01:00.000Z")
    )
    assert changed.version == 2
    counts = store.take()
    assert (counts["batch"], counts["point.create"], counts["point.replace"]) == (2, 0, 0)

    stored = await everything(store)
    assert sorted(stored) == ["evt:1.1", "evt:2.1", "evt:2.2", "o-1"]
    assert stored["o-1"]["version"] == 2
    paid = stored["evt:2.1"]
    assert paid["conversationId"] == "o-1"
    assert paid["ttl"] == int(EVENT_TTL.total_seconds())
    message = event_message(paid)
    assert message is not None
    assert (message.message_id, message.session_id, message.subject) == ("o-1:2.1", "o-1", "order.paid")
    assert json.loads(message.body) == {
        "id": "o-1:2.1",
        "type": "order.paid",
        "aggregateId": "o-1",
        "version": 2,
        "at": "2026-01-05T09:01:00.000Z",
        "data": {"amount": 3},
    }
    assert event_message(stored["o-1"]) is None


async def test_a_change_without_events_is_one_point_write_and_still_counts_a_version(
    store: CountingStore,
) -> None:
    orders = Aggregates(store, "orders", Order)
    created = await orders.create(Order(id="o-1", conversation_id="o-1"))
    changed = await orders.replace(created.changed(state="paid"))
    counts = store.take()
    assert (counts["batch"], counts["point.create"], counts["point.replace"]) == (0, 1, 1)
    assert changed.version == 2
    assert sorted(await everything(store)) == ["o-1"]


async def test_a_lost_race_writes_neither_the_change_nor_its_events(store: CountingStore) -> None:
    orders = Aggregates(store, "orders", Order)
    first = await orders.create(Order(id="o-1", conversation_id="o-1"))
    await orders.replace(first.changed(state="paid").emit("order.paid", "2026-01-05T09:01:00.000Z"))
    with pytest.raises(PreconditionFailed):
        await orders.replace(first.changed(state="void").emit("order.voided", "2026-01-05T09:02:00.000Z"))
    stored = await everything(store)
    assert sorted(stored) == ["evt:2.1", "o-1"]
    assert stored["o-1"]["state"] == "paid"


async def test_a_child_that_exists_already_writes_nothing_of_the_change(store: CountingStore) -> None:
    orders = Aggregates(store, "orders", Order)
    first = await orders.create(
        Order(id="o-1", conversation_id="o-1"), children=[Line(id="line:1", conversation_id="o-1", text="a")]
    )
    with pytest.raises(ChildConflict) as refused:
        await orders.replace(
            first.changed(state="more").emit("order.line", "2026-01-05T09:01:00.000Z"),
            children=[Line(id="line:1", conversation_id="o-1", text="b")],
        )
    assert refused.value.id == "line:1"
    stored = await everything(store)
    assert sorted(stored) == ["line:1", "o-1"]
    assert (stored["o-1"]["version"], stored["line:1"]["text"]) == (1, "a")


async def test_an_aggregate_cannot_be_written_around_the_outbox(store: CountingStore) -> None:
    plain = Stored(store, "orders", Order)
    with pytest.raises(TypeError):
        await plain.create(Order(id="o-1", conversation_id="o-1"))
    with pytest.raises(TypeError):
        await Aggregates(store, "orders", Order).upsert(Order(id="o-1", conversation_id="o-1"))
    created = await Aggregates(store, "orders", Order).create(Order(id="o-1", conversation_id="o-1"))
    with pytest.raises(ValueError, match="conditional"):
        await Aggregates(store, "orders", Order).replace(
            created.emit("order.x", "2026-01-05T09:01:00.000Z"), unconditional=True
        )
