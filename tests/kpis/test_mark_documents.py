"""The hour documents stay the same size however busy the hour: each aggregate's mark is its own
document beside the hour, written with it in one batch. A redelivery meets the marks and writes
nothing; an event whose second hour's batch failed adds, when it comes again, only to that hour."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.history.api import parse_envelope
from shared.kernel.documents import BatchOperation, Container, DocumentStore, Item, Query, where
from shared.kernel.errors import Unavailable
from shared.kernel.times import stamp
from shared.kpis.aggregation import StoredLedger, apply_event
from shared.kpis.api import kpi_range
from shared.kpis.documents import mark_id
from shared.runtime import Runtime
from tests.conftest import stored_items
from tests.history.support import envelope
from tests.kpis.sequence import known_day

HOUR = datetime(2026, 3, 2, 10, tzinfo=UTC)
QUEUES = ("gen", "bill")


def conversation(n: int) -> list[dict[str, Any]]:
    """Conversation `n` of the hour: waiting, then accepted by one of 10 agents, in its hour."""
    cid = f"c-{n:064x}"  # as long as a real conversation id (`c-` + 64 hex)
    queued = HOUR + timedelta(seconds=(n * 613) % 3300)  # spread over the four quarters
    accepted = queued + timedelta(seconds=5 + n % 50)
    queue, agent = QUEUES[n % 2], f"a-{n % 10}"
    return [
        envelope(
            "conversation.waiting", cid, 1, stamp(queued), queueId=queue, queuedAt=stamp(queued), first=True
        ),
        envelope(
            "conversation.accepted",
            cid,
            2,
            stamp(accepted),
            queueId=queue,
            agentId=agent,
            first=True,
            acceptedAt=stamp(accepted),
            waitSeconds=float(5 + n % 50),
            firstWaitSeconds=float(5 + n % 50),
            serviceLevelSeconds=30,
            firstQueueId=queue,
        ),
    ]


async def whole_hour(runtime: Runtime) -> Item:
    return await runtime.store.container("kpis").read("all|2026-03-02T10", "all:2026-03-02")


def size(item: Item) -> int:
    return len(json.dumps({k: v for k, v in item.items() if not k.startswith("_")}, separators=(",", ":")))


async def test_the_hour_document_does_not_grow_with_the_conversations_of_its_hour(runtime: Runtime) -> None:
    ledger = StoredLedger(runtime.store)
    sizes = {}
    for n in range(500):
        for event in conversation(n):
            await apply_event(ledger, parse_envelope(event), 10)
        if n + 1 in (50, 500):
            sizes[n + 1] = await whole_hour(runtime)

    early, late = sizes[50], sizes[500]
    assert late["buckets"][0]["incoming"] > early["buckets"][0]["incoming"]
    assert [sorted(b) for b in late["buckets"]] == [sorted(b) for b in early["buckets"]]
    # Only the sums' digits grow: at most 2 more digits per quarter-sum from 50 to 500.
    quarter_sums = sum(len(bucket) for bucket in late["buckets"])
    assert size(late) - size(early) <= 2 * quarter_sums
    assert size(late) < 2048
    assert set(late) - {"_etag", "_ts", "_rid", "_self", "_attachments", "_lsn"} == {
        "id",
        "schemaVersion",
        "type",
        "partition",
        "scope",
        "hour",
        "sortKey",
        "buckets",
    }
    # Each conversation's mark is a document of its own in the hour's partition.
    kpis = runtime.store.container("kpis")
    marks = await kpis.count(Query((where("type", "=", "kpi-mark"),)), partition_key="all:2026-03-02")
    assert marks == 500
    mark = await kpis.read(mark_id(HOUR, f"c-{499:064x}"), "all:2026-03-02")
    assert mark["applied"] == [2, 1]
    assert len(mark["id"]) <= 100
    # The query reads the hour, not the marks.
    totals = (await kpi_range(runtime.store, HOUR, HOUR + timedelta(hours=1), "1h"))["totals"]
    assert totals["incoming"] == totals["engaged"] == 500


def test_a_long_aggregate_id_gets_a_hashed_mark_id() -> None:
    long = "x" * 100
    assert len(mark_id(HOUR, long)) <= 100
    assert mark_id(HOUR, long) != mark_id(HOUR, "x" * 99)
    assert mark_id(HOUR, "c-1") == "mark:2026-03-02T10:c-1"


def without_store_fields(items: list[Item]) -> list[Item]:
    kept = [{k: v for k, v in i.items() if not k.startswith("_")} for i in items]
    return sorted(kept, key=lambda i: (i["partition"], i["id"]))


async def test_a_redelivery_meets_the_marks_and_writes_nothing(runtime: Runtime) -> None:
    events = known_day()
    first = StoredLedger(runtime.store)
    for event in events:
        await apply_event(first, parse_envelope(event), 10)
    before = await stored_items(runtime, "kpis")
    assert any(i["type"] == "kpi-mark" for i in before)

    again = StoredLedger(runtime.store)
    for event in events:
        await apply_event(again, parse_envelope(event), 10)

    assert again.writes == 0
    after = await stored_items(runtime, "kpis")
    assert without_store_fields(after) == without_store_fields(before)
    assert sorted(i["_etag"] for i in after) == sorted(i["_etag"] for i in before)


class FailingBatch:
    """The `kpis` container, whose `fail_at`-th batch fails once as an outage would."""

    def __init__(self, inner: Container, fail_at: int) -> None:
        self.inner, self.fail_at, self.batches = inner, fail_at, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def batch(self, partition_key: str, operations: Sequence[BatchOperation]) -> list[Item | None]:
        self.batches += 1
        if self.batches == self.fail_at:
            raise Unavailable("the store went away")
        return await self.inner.batch(partition_key, operations)


class Store:
    def __init__(self, inner: DocumentStore, kpis: FailingBatch) -> None:
        self.inner, self.kpis = inner, kpis

    def container(self, name: str) -> Any:
        return self.kpis if name == "kpis" else self.inner.container(name)


async def test_an_event_whose_second_hour_failed_adds_only_to_the_rest_when_it_comes_again(
    runtime: Runtime,
) -> None:
    kpis = runtime.store.container("kpis")
    waiting, accepted = (parse_envelope(e) for e in conversation(1))
    await apply_event(StoredLedger(runtime.store), waiting, 10)
    # The acceptance adds to three hour documents (the service, the queue, the agent), a batch
    # each: the second one fails.
    failing = FailingBatch(kpis, fail_at=2)
    with pytest.raises(Unavailable):
        await apply_event(StoredLedger(Store(runtime.store, failing)), accepted, 10)  # type: ignore[arg-type]
    assert failing.batches == 2
    first_written = {i["id"]: i["_etag"] for i in await stored_items(runtime, "kpis")}

    redelivered = StoredLedger(Store(runtime.store, failing))  # type: ignore[arg-type]
    assert await apply_event(redelivered, accepted, 10) == 2  # the two hours it had not written
    await apply_event(redelivered, accepted, 10)  # and once more: nothing
    assert redelivered.writes == 2

    after = {i["id"]: i["_etag"] for i in await stored_items(runtime, "kpis")}
    assert after["all|2026-03-02T10"] == first_written["all|2026-03-02T10"]
    for queue_id, agent_id in ((None, None), ("bill", None), (None, "a-1")):
        totals = (await kpi_range(runtime.store, HOUR, HOUR + timedelta(hours=1), "1h", queue_id, agent_id))[
            "totals"
        ]
        assert totals["engaged"] == 1, (queue_id, agent_id)
        assert totals["asaSeconds"] == 6.0
