"""Topic triggers get the Functions host's behaviour, end to end through the embedded bus: a plain
subscription like a queue (peek-lock, complete on success, abandon on failure); a session-enabled
one a session at a time per slot, one message at a time, in order, up to maxConcurrentSessions."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.config_files import HostConfig, read_host_json
from devhost.discovery import TopicFunction
from devhost.errors import StartError
from devhost.host import DevHost
from devhost.invocation import Invoker
from devhost.queues import QueueRunner
from devhost.sessions import SessionRunner
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.kernel.clock import ManualClock
from shared.kernel.messages import OutgoingMessage, SubscriptionSpec, TopicSpec, subscription_entity
from tests.devhost.conftest import discovered, new_app

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LOCK = timedelta(seconds=30)
TOPICS = {
    "events": TopicSpec(
        "events",
        "EVENTS_TOPIC",
        subscriptions=(
            SubscriptionSpec(
                "audit", "AUDIT_SUB", max_delivery_count=3, lock_duration=LOCK, subjects=("booked",)
            ),
            SubscriptionSpec(
                "ordered", "ORDERED_SUB", max_delivery_count=3, lock_duration=LOCK, requires_session=True
            ),
        ),
    )
}
ENV = {"EVENTS_TOPIC": "events", "AUDIT_SUB": "audit", "ORDERED_SUB": "ordered"}
ORDERED = subscription_entity("events", "ordered")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def bus(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteMessageBus]:
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", {}, clock, topics=TOPICS)
    yield bus
    await bus.close()


class Handler:
    """Topic functions whose behaviour the test steers: fail some messages, or block until released."""

    def __init__(self) -> None:
        self.seen: list[func.ServiceBusMessage] = []
        self.running: set[str] = set()
        self.overlap: list[str] = []
        self.fail_ids: set[str] = set()
        self.block = False
        self.release = asyncio.Event()

    def app(self, *, retry: bool = False) -> func.FunctionApp:
        app = new_app()

        @app.service_bus_topic_trigger(
            arg_name="msg", topic_name="%EVENTS_TOPIC%", subscription_name="%AUDIT_SUB%", connection="SB"
        )
        async def audit(msg: func.ServiceBusMessage) -> None:
            await self._handle(msg)

        def with_retry(function: Any) -> Any:
            if not retry:
                return function
            return app.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:00:01")(function)

        @with_retry
        @app.service_bus_topic_trigger(
            arg_name="msg",
            topic_name="%EVENTS_TOPIC%",
            subscription_name="%ORDERED_SUB%",
            connection="SB",
            is_sessions_enabled=True,
        )
        async def ordered(msg: func.ServiceBusMessage) -> None:
            await self._handle(msg)

        return app

    async def _handle(self, msg: func.ServiceBusMessage) -> None:
        session = msg.session_id or ""
        if session in self.running:
            self.overlap.append(session)
        self.running.add(session)
        self.seen.append(msg)
        try:
            await asyncio.sleep(0)
            if self.block:
                await self.release.wait()
            if msg.message_id in self.fail_ids:
                raise RuntimeError("handler failed")
        finally:
            self.running.discard(session)

    def functions(self, **kw: bool) -> dict[str, TopicFunction]:
        return {f.target.name: f for f in discovered(self.app(**kw), ENV).topics}


def event(session_id: str, n: int, subject: str = "booked") -> OutgoingMessage:
    return OutgoingMessage(body=b"{}", message_id=f"{session_id}:{n}", subject=subject, session_id=session_id)


def session_runner(
    handler: Handler, bus: SqliteMessageBus, clock: ManualClock, **kw: object
) -> SessionRunner:
    return SessionRunner(handler.functions()["ordered"], bus, clock, Invoker(), **kw)  # type: ignore[arg-type]


async def drain(runner: SessionRunner, rounds: int = 10) -> None:
    for _ in range(rounds):
        await runner.poll_once()
        await runner.wait_idle()


def test_topic_and_subscription_settings_are_resolved_and_sessions_noted() -> None:
    functions = Handler().functions()

    assert functions["audit"].entity == "events/subscriptions/audit"
    assert functions["audit"].sessions is False
    assert functions["ordered"].sessions is True
    assert functions["ordered"].subscription_setting == "%ORDERED_SUB%"


def test_an_unset_subscription_setting_fails_at_start_naming_it() -> None:
    with pytest.raises(StartError, match="AUDIT_SUB"):
        discovered(Handler().app(), {"EVENTS_TOPIC": "events", "ORDERED_SUB": "ordered"})


async def test_a_subscription_missing_from_the_catalogue_fails_at_start_naming_it(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    app = discovered(Handler().app(), {**ENV, "AUDIT_SUB": "audti"})
    host = DevHost(app, clock=clock, invoker=Invoker(), receiver=bus)

    with pytest.raises(StartError, match="'audti'"):
        await host.check_queues()


async def test_a_plain_subscription_runs_like_a_queue_and_sees_only_its_subjects(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.fail_ids = {"a:1"}
    runner = QueueRunner(handler.functions()["audit"], bus, clock, Invoker())
    await bus.send("events", event("a", 0))
    await bus.send("events", event("a", 1))
    await bus.send("events", event("a", 2, subject="cancelled"))

    for _ in range(4):
        await runner.poll_once()
        await runner.wait_idle()

    assert sorted((m.message_id, m.delivery_count) for m in handler.seen) == [
        ("a:0", 1),
        ("a:1", 1),
        ("a:1", 2),
        ("a:1", 3),
    ]
    (dead,) = await bus.peek_dead_letters("events/subscriptions/audit")
    assert (dead.message_id, dead.reason) == ("a:1", "MaxDeliveryCountExceeded")
    assert handler.seen[0].subject == "booked"


async def test_each_session_is_handled_in_order_one_message_at_a_time(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    runner = session_runner(handler, bus, clock, max_concurrent_sessions=3)
    for n in range(4):
        for sid in ("a", "b", "c", "d"):
            await bus.send("events", event(sid, n))

    await drain(runner)
    clock.advance(61)  # idle sessions are let go; the fourth session gets a slot
    await drain(runner)

    by_session: dict[str, list[str]] = defaultdict(list)
    for message in handler.seen:
        by_session[message.session_id or ""].append(message.message_id)
    assert by_session == {sid: [f"{sid}:{n}" for n in range(4)] for sid in "abcd"}
    assert handler.overlap == []
    assert runner.stats.sessions_accepted == 4


async def test_at_most_max_concurrent_sessions_are_held_at_once(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.block = True
    runner = session_runner(handler, bus, clock, max_concurrent_sessions=2)
    for sid in ("a", "b", "c"):
        await bus.send("events", event(sid, 0))

    assert await runner.poll_once() == 2
    await asyncio.sleep(0)
    assert await runner.poll_once() == 0
    assert runner.active_sessions == 2
    assert len(handler.seen) == 2

    handler.release.set()
    await runner.wait_idle()
    clock.advance(61)
    await drain(runner, 2)
    assert sorted(m.message_id for m in handler.seen) == ["a:0", "b:0", "c:0"]


async def test_a_failing_session_message_comes_back_first_then_is_dead_lettered_and_the_session_moves_on(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.fail_ids = {"a:0"}
    runner = session_runner(handler, bus, clock)
    for n in range(2):
        await bus.send("events", event("a", n))

    await drain(runner, 2)

    assert [(m.message_id, m.delivery_count) for m in handler.seen] == [
        ("a:0", 1),
        ("a:0", 2),
        ("a:0", 3),
        ("a:1", 1),
    ]
    (dead,) = await bus.peek_dead_letters(ORDERED)
    assert dead.message_id == "a:0"


async def test_a_retry_policy_on_a_service_bus_trigger_is_not_applied_redelivery_is(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.fail_ids = {"a:0"}
    app = discovered(handler.app(retry=True), ENV)
    runner = SessionRunner(app.topics[1], bus, clock, Invoker())
    await bus.send("events", event("a", 0))

    await drain(runner, 2)

    assert [m.delivery_count for m in handler.seen] == [
        1,
        2,
        3,
    ]  # max delivery count, not the policy's 3 retries
    assert app.retry_ignored == ("ordered",)
    host = DevHost(app, clock=clock, invoker=Invoker(), receiver=bus)
    assert "ordered: retry policy not applied" in host.banner("http://127.0.0.1:7071")


async def test_a_long_message_keeps_its_session_through_lock_renewal(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.block = True
    runner = session_runner(handler, bus, clock)
    other = session_runner(Handler(), bus, clock)
    await bus.send("events", event("a", 0))
    await bus.send("events", event("a", 1))
    await runner.poll_once()
    await asyncio.sleep(0)

    for _ in range(10):  # 100 s, past three lock durations
        clock.advance(10)
        await runner.poll_once()
        assert await other.poll_once() == 0

    handler.release.set()
    await runner.wait_idle()
    assert [m.message_id for m in handler.seen] == ["a:0", "a:1"]
    assert runner.stats.renewals >= 3
    assert runner.stats.lock_lost == 0


async def test_a_session_idle_for_the_idle_timeout_gives_its_slot_to_another_session(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    runner = session_runner(
        handler, bus, clock, max_concurrent_sessions=1, session_idle_timeout=timedelta(seconds=5)
    )
    await bus.send("events", event("a", 0))
    await drain(runner, 1)
    await bus.send("events", event("b", 0))

    await drain(runner, 2)
    assert [m.message_id for m in handler.seen] == ["a:0"]  # the slot still holds idle session a
    clock.advance(6)
    await drain(runner, 2)

    assert [m.message_id for m in handler.seen] == ["a:0", "b:0"]
    assert runner.stats.sessions_released == 1


async def test_stopping_releases_sessions_so_an_interrupted_message_comes_back(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.block = True
    runner = session_runner(handler, bus, clock)
    await bus.send("events", event("a", 0))
    await runner.poll_once()
    await asyncio.sleep(0)

    await runner.stop(grace_seconds=0.05)

    again = Handler()
    await drain(session_runner(again, bus, clock), 2)
    assert [(m.message_id, m.delivery_count) for m in again.seen] == [("a:0", 2)]


def test_host_json_sets_max_concurrent_sessions_and_the_idle_timeout(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(
        '{"extensions": {"serviceBus": {"maxConcurrentSessions": 3, "sessionIdleTimeout": "00:00:02"}}}'
    )

    config = read_host_json(path)

    assert (config.max_concurrent_sessions, config.session_idle_timeout) == (3, timedelta(seconds=2))
    assert HostConfig().max_concurrent_sessions == 8
    assert HostConfig().session_idle_timeout == timedelta(seconds=60)
    path.write_text('{"extensions": {"serviceBus": {"maxConcurrentSessions": 0}}}')
    with pytest.raises(StartError, match="maxConcurrentSessions"):
        read_host_json(path)


async def test_the_banner_lists_topic_triggers_with_their_subscriptions(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    host = DevHost(discovered(Handler().app(), ENV), clock=clock, invoker=Invoker(), receiver=bus)
    await host.check_queues()

    banner = host.banner("http://127.0.0.1:7071")

    assert "audit: serviceBusTrigger (topic 'events', subscription 'audit', 0 waiting)" in banner
    assert (
        "ordered: serviceBusTrigger (topic 'events', subscription 'ordered', sessions, 0 waiting)" in banner
    )


async def test_a_trigger_whose_sessions_setting_does_not_match_its_subscription_fails_at_start(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    app = new_app()

    @app.service_bus_topic_trigger(
        arg_name="msg", topic_name="%EVENTS_TOPIC%", subscription_name="%ORDERED_SUB%", connection="SB"
    )
    async def forgot_sessions(msg: func.ServiceBusMessage) -> None: ...

    host = DevHost(discovered(app, ENV), clock=clock, invoker=Invoker(), receiver=bus)

    with pytest.raises(StartError, match="requires sessions"):
        await host.check_queues()
