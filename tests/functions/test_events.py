"""The outbox relay (functions/events.py, shared/kernel/relay.py): each event document of a
change-feed batch becomes one `events` message (id, session, subject from the event), in the
batch's order; other documents are ignored; a batch too big for one Service Bus batch goes in
order-keeping halves; and the triggers are declared as the Cosmos DB trigger needs them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest

from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.kernel.catalog import QUEUES
from shared.kernel.clock import ManualClock
from shared.kernel.errors import PayloadTooLarge, Unavailable
from shared.kernel.messages import OutgoingMessage
from shared.kernel.relay import relay_events
from shared.runtime import Runtime, use_runtime
from tests.conftest import registered_functions, trigger_settings
from tests.devhost.outbox_host import PROBE, probe_topics


def event_item(
    aggregate: str, version: int, n: int, kind: str = "conversation.message", **data: Any
) -> dict[str, Any]:
    """An event document as the outbox stores it and the change feed hands it (system fields too)."""
    return {
        "id": f"evt:{version}.{n}",
        "type": "event",
        "eventType": kind,
        "aggregateId": aggregate,
        "version": version,
        "n": n,
        "at": "2026-01-05T09:00:00.000Z",
        "data": data,
        "ttl": 1209600,
        "conversationId": aggregate,
        "_etag": '"1"',
        "_ts": 1767603600,
        "_lsn": 7,
    }


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteMessageBus]:
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", QUEUES, ManualClock(), topics=probe_topics())
    yield bus
    await bus.close()


async def received(bus: SqliteMessageBus) -> dict[str, list[tuple[str, str | None, dict[str, Any]]]]:
    """Each session's messages in order: (message id, subject, body)."""
    sessions: dict[str, list[tuple[str, str | None, dict[str, Any]]]] = {}
    while (session := await bus.accept_next_session(PROBE)) is not None:
        got = sessions.setdefault(session.session_id, [])
        while batch := await bus.receive_from_session(session, max_messages=50):
            for message in batch:
                got.append((message.message_id, message.subject, json.loads(message.body)))
                await bus.complete(PROBE, message.lock_token)
        await bus.release_session(session)
    return sessions


async def test_each_event_document_is_published_once_with_its_id_session_and_type_in_feed_order(
    bus: SqliteMessageBus,
) -> None:
    changes = [
        {"id": "c-1", "type": "conversation", "conversationId": "c-1", "version": 1},
        event_item("c-1", 1, 1, "conversation.waiting", queueId="q"),
        {"id": "msg:0000000001", "type": "message", "conversationId": "c-1", "text": "hello"},
        event_item("c-1", 2, 1, "conversation.message", seq=1, visibility="patient"),
        event_item("c-2", 1, 1, "conversation.waiting", queueId="q"),
        event_item("c-1", 3, 1, "conversation.offered", agentId="a-1"),
        event_item("c-1", 3, 2, "conversation.message", seq=2, visibility="internal"),
    ]

    assert await relay_events(bus, changes) == 5

    sessions = await received(bus)
    assert [(m, s) for m, s, _ in sessions["c-1"]] == [
        ("c-1:1.1", "conversation.waiting"),
        ("c-1:2.1", "conversation.message"),
        ("c-1:3.1", "conversation.offered"),
        ("c-1:3.2", "conversation.message"),
    ]
    assert [m for m, _, _ in sessions["c-2"]] == ["c-2:1.1"]
    assert sessions["c-1"][1][2] == {
        "id": "c-1:2.1",
        "type": "conversation.message",
        "aggregateId": "c-1",
        "version": 2,
        "at": "2026-01-05T09:00:00.000Z",
        "data": {"seq": 1, "visibility": "patient"},
    }


async def test_the_events_of_one_write_go_by_their_number_whatever_order_the_feed_gives(
    bus: SqliteMessageBus,
) -> None:
    changes = [
        event_item("c-1", 4, 1, "conversation.accepted"),
        event_item("c-1", 5, 2, "conversation.waiting"),  # one transfer: .transferred, then .waiting
        event_item("c-2", 1, 1, "conversation.waiting"),
        event_item("c-1", 5, 1, "conversation.transferred"),
        event_item("c-1", 6, 1, "conversation.offered"),
    ]
    await relay_events(bus, changes)

    assert [m for m, _, _ in (await received(bus))["c-1"]] == ["c-1:4.1", "c-1:5.1", "c-1:5.2", "c-1:6.1"]


async def test_a_batch_delivered_again_after_a_crash_publishes_nothing_twice(bus: SqliteMessageBus) -> None:
    changes = [event_item("c-1", v, 1) for v in range(1, 6)]
    await relay_events(bus, changes[:3])  # published, then the host died before its checkpoint
    await relay_events(bus, changes)

    assert [m for m, _, _ in (await received(bus))["c-1"]] == [f"c-1:{v}.1" for v in range(1, 6)]


async def test_a_batch_with_no_event_sends_nothing(bus: SqliteMessageBus) -> None:
    changes = [{"id": "c-1", "type": "conversation", "conversationId": "c-1", "version": 4}]
    assert await relay_events(bus, changes) == 0
    assert await received(bus) == {}


class SmallBatches:
    """A bus whose batches hold at most `limit` messages (as a 256 KB batch holds so many bytes)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[list[str]] = []

    async def send_batch(self, entity: str, messages: Sequence[OutgoingMessage]) -> None:
        assert entity == "events"
        if len(messages) > self.limit:
            raise PayloadTooLarge("batch over the limit")
        self.sent.append([m.message_id for m in messages])


async def test_a_batch_too_big_for_the_bus_goes_in_halves_keeping_the_order() -> None:
    bus = SmallBatches(limit=3)
    changes = [event_item("c-1", v, 1) for v in range(1, 11)]

    await relay_events(bus, changes)  # type: ignore[arg-type]  # only send_batch is used

    assert all(len(batch) <= 3 for batch in bus.sent)
    assert [m for batch in bus.sent for m in batch] == [f"c-1:{v}.1" for v in range(1, 11)]


async def test_a_single_event_over_the_limit_fails_the_batch_so_the_retry_policy_keeps_it() -> None:
    with pytest.raises(PayloadTooLarge):
        await relay_events(SmallBatches(limit=0), [event_item("c-1", 1, 1)])  # type: ignore[arg-type]


async def test_the_relay_function_publishes_the_trigger_batch_through_the_runtime_bus(
    runtime: Runtime, bus: SqliteMessageBus
) -> None:
    docs = func.DocumentList([func.Document.from_dict(event_item("c-9", 1, 1, "conversation.closed"))])
    fn = registered_functions()["relay_conversation_events"].get_user_function()

    with use_runtime(replace(runtime, bus=bus)):
        await fn(docs)

    assert [m for m, _, _ in (await received(bus))["c-9"]] == ["c-9:1.1"]


def test_one_relay_per_aggregate_container_with_its_own_lease_and_a_retry_that_never_skips() -> None:
    functions = registered_functions()
    relays = {
        "relay_conversation_events": "conversations",
        "relay_appointment_events": "appointments",
        "relay_agent_events": "agents",
        "relay_notification_events": "notifications",
    }
    prefixes = set()
    for name, container in relays.items():
        function = functions[name]
        trigger = function.get_trigger()
        assert trigger.get_binding_name() == "cosmosDBTrigger"
        settings = trigger.get_dict_repr()
        assert settings["containerName"] == container
        assert settings["databaseName"] == "%COSMOS_DATABASE%"
        assert settings["connection"] == "COSMOS"  # COSMOS__accountEndpoint: the identity
        assert settings["leaseContainerName"] == "leases"
        assert not settings.get("createLeaseContainerIfNotExists")
        assert settings["startFromBeginning"] is True
        prefixes.add(settings["leaseContainerPrefix"])
        retry = function.get_settings_dict("retry_policy")
        assert retry is not None
        assert retry["strategy"] == "exponential_backoff"
        assert retry["max_retry_count"] == "-1"
    assert len(prefixes) == len(relays)


class FlakyBus:
    """The probe bus, down for the first `failures` sends (Service Bus unreachable, throttled)."""

    def __init__(self, inner: SqliteMessageBus, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def send_batch(self, entity: str, messages: Sequence[OutgoingMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise Unavailable("the bus is down")
        await self.inner.send_batch(entity, messages)


async def test_a_batch_the_bus_refuses_is_retried_with_backoff_never_skipped(
    runtime: Runtime, bus: SqliteMessageBus
) -> None:
    from devhost.change_feed import ChangeFeedRunner
    from devhost.discovery import discover
    from devhost.invocation import Invoker

    app = SimpleNamespace(get_functions=lambda: list(registered_functions().values()))
    (relay,) = [f for f in discover(app, trigger_settings()).change_feeds if f.container == "conversations"]
    flaky = FlakyBus(bus, failures=4)
    host_runtime = replace(runtime, bus=flaky)  # type: ignore[arg-type]  # only send_batch is used
    feed = ChangeFeedRunner(relay, runtime.store, runtime.clock, Invoker(host_runtime))  # type: ignore[arg-type]
    conversations = runtime.store.container("conversations")
    for version in (1, 2):
        item = {k: v for k, v in event_item("c-1", version, 1).items() if not k.startswith("_")}
        await conversations.create(item)
    before = runtime.clock.now()

    assert await feed.poll_once() == 2

    assert flaky.failures == 0
    assert runtime.clock.now() - before == timedelta(seconds=1 + 2 + 4 + 8)  # exponential from 1 s
    assert feed.stats.skipped_batches == 0
    assert [m for m, _, _ in (await received(bus))["c-1"]] == ["c-1:1.1", "c-1:2.1"]
    assert await feed.poll_once() == 0  # checkpointed past them only once they were published
