"""The event history keeps every event once, under its UTC day, and gives a day back in order."""

from __future__ import annotations

import json

import pytest

from shared.history import api as history
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.runtime import Runtime
from tests.conftest import registered_functions
from tests.history.support import envelope, topic_message, written_envelopes
from tests.routing.support import deliver, enqueue, presence, put_agent, put_queue, put_rules


async def consume(*envelopes: dict[str, object]) -> None:
    handler = registered_functions()["event_history"].get_user_function()
    for item in envelopes:
        await handler(topic_message(item))


async def filed(runtime: Runtime, day: str) -> list[dict[str, object]]:
    page = await runtime.store.container("history").query(Query(), partition_key=day, max_items=1000)
    return page.items


async def test_every_event_of_a_real_conversation_is_filed_once_and_read_back_in_order(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general", serviceLevelSeconds=45)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"])
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    written = await written_envelopes(runtime)
    assert {e["type"] for e in written} >= {"conversation.waiting", "conversation.offered", "agent.presence"}

    await consume(*written)
    await consume(*reversed(written))  # redelivered, in any order: nothing changes

    day = written[0]["at"][:10]
    read = [e async for e in history.events_of_day(runtime.store, day)]
    assert read == written
    assert len(await filed(runtime, day)) == len(written)


async def test_a_day_is_read_in_order_of_at_across_pages_with_one_writes_events_in_their_order(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "PAGE", 2)
    late = envelope("conversation.closed", "c-1", 12, "2026-03-01T10:00:00.000Z", n=2)
    early = envelope("conversation.waiting", "c-2", 1, "2026-03-01T08:00:00.000Z")
    first_of_write = envelope("conversation.abandoned", "c-1", 12, "2026-03-01T10:00:00.000Z", n=1)
    tenth = envelope("conversation.message", "c-1", 12, "2026-03-01T10:00:00.000Z", n=10)
    next_day = envelope("conversation.waiting", "c-3", 1, "2026-03-02T00:00:00.000Z")
    before_midnight = envelope("agent.presence", "a-1", 9, "2026-03-01T23:59:59.999Z")
    await consume(late, next_day, tenth, early, before_midnight, first_of_write)

    read = [e async for e in history.events_of_day(runtime.store, "2026-03-01")]
    assert [e["id"] for e in read] == ["c-2:1.1", "c-1:12.1", "c-1:12.2", "c-1:12.10", "a-1:9.1"]
    from datetime import date

    both = [e["id"] async for e in history.events_between(runtime.store, date(2026, 3, 1), date(2026, 3, 2))]
    assert both == [*[e["id"] for e in read], "c-3:1.1"]
    assert [e async for e in history.events_of_day(runtime.store, "2026-03-03")] == []


async def test_an_event_stamped_with_an_offset_is_filed_under_its_utc_day(runtime: Runtime) -> None:
    await consume(envelope("agent.presence", "a-1", 2, "2026-03-01T23:30:00-02:00"))
    (item,) = await filed(runtime, "2026-03-02")
    assert item["at"] == "2026-03-02T01:30:00.000Z"


async def test_the_history_keeps_the_envelope_and_nothing_else(runtime: Runtime) -> None:
    event = envelope("conversation.accepted", "c-1", 3, "2026-03-01T08:00:00.000Z", agentId="a-1", first=True)
    await consume(event)
    (item,) = await filed(runtime, "2026-03-01")
    kept = {k: v for k, v in item.items() if not k.startswith("_")}
    assert kept == {
        "id": "c-1:3.1",
        "schemaVersion": 1,
        "type": "history-event",
        "day": "2026-03-01",
        "sortKey": "2026-03-01T08:00:00.000Z|c-1|000000000003|0001",
        "eventType": "conversation.accepted",
        "aggregateId": "c-1",
        "version": 3,
        "n": 1,
        "at": "2026-03-01T08:00:00.000Z",
        "data": {"agentId": "a-1", "first": True},
    }


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({"id": "c-1:3.1", "type": "x"}).encode(),
        json.dumps(envelope("x.y", "c-1", 3, "not a time")).encode(),
        json.dumps({**envelope("x.y", "c-1", 3, "2026-03-01T08:00:00Z"), "id": "c-1:4.1"}).encode(),
    ],
)
async def test_a_message_that_is_not_an_envelope_fails_and_files_nothing(
    runtime: Runtime, body: bytes
) -> None:
    handler = registered_functions()["event_history"].get_user_function()
    message = topic_message(envelope("x.y", "c-1", 3, "2026-03-01T08:00:00Z"), body=body)
    with pytest.raises(ValueError, match=r"\w"):
        await handler(message)
    page = await runtime.store.container("history").query_cross_partition(Query(), max_items=10)
    assert page.items == []
