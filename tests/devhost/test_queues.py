"""Queue triggers get the Functions host's peek-lock behaviour, end to end through the embedded bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.functions as func
import pytest

from devhost.config_files import HostConfig
from devhost.discovery import QueueFunction
from devhost.errors import StartError
from devhost.host import DevHost
from devhost.invocation import Invoker
from devhost.queues import QueueRunner
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.kernel.clock import ManualClock
from shared.kernel.messages import OutgoingMessage, QueueSpec
from tests.devhost.conftest import discovered, new_app

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
QUEUES = {
    spec.name: spec
    for spec in (QueueSpec("jobs", "JOBS_QUEUE", max_delivery_count=3, lock_duration=timedelta(seconds=30)),)
}
ENV = {"JOBS_QUEUE": "jobs"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def bus(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteMessageBus]:
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", QUEUES, clock)
    yield bus
    await bus.close()


class Handler:
    """A queue function whose behaviour the test steers: fail, or block until released."""

    def __init__(self) -> None:
        self.messages: list[func.ServiceBusMessage] = []
        self.fail = False
        self.block = False
        self.release = asyncio.Event()

    def app(self) -> func.FunctionApp:
        app = new_app()

        @app.service_bus_queue_trigger(
            arg_name="msg", queue_name="%JOBS_QUEUE%", connection="ServiceBusConnection"
        )
        async def work(msg: func.ServiceBusMessage) -> None:
            self.messages.append(msg)
            if self.block:
                await self.release.wait()
            if self.fail:
                raise ValueError(f"cannot handle {msg.get_body().decode()}")

        return app

    def function(self) -> QueueFunction:
        return discovered(self.app(), ENV).queues[0]


def runner_for(
    handler: Handler,
    bus: SqliteMessageBus,
    clock: ManualClock,
    *,
    max_concurrent_calls: int = 16,
    max_auto_lock_renewal: timedelta = timedelta(minutes=5),
) -> QueueRunner:
    return QueueRunner(
        handler.function(),
        bus,
        clock,
        Invoker(),
        max_concurrent_calls=max_concurrent_calls,
        max_auto_lock_renewal=max_auto_lock_renewal,
    )


async def send(bus: SqliteMessageBus, message_id: str, body: bytes = b"{}", **kw: object) -> None:
    await bus.send("jobs", OutgoingMessage(body=body, message_id=message_id, **kw))  # type: ignore[arg-type]


async def depth(bus: SqliteMessageBus) -> tuple[int, int]:
    (queue_depth,) = await bus.depths(["jobs"])
    return queue_depth.active, queue_depth.dead_letter


def test_queue_name_setting_references_are_resolved() -> None:
    function = Handler().function()
    assert function.queue_name == "jobs"
    assert function.queue_setting == "%JOBS_QUEUE%"


def test_an_unset_queue_setting_fails_at_start_naming_it() -> None:
    with pytest.raises(StartError, match="JOBS_QUEUE"):
        discovered(Handler().app(), {})


async def test_a_queue_missing_from_the_bus_catalogue_fails_at_start_naming_it(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    app = discovered(handler.app(), {"JOBS_QUEUE": "jbos"})
    host = DevHost(app, clock=clock, invoker=Invoker(), receiver=bus, host_config=HostConfig())
    with pytest.raises(StartError, match="'jbos'"):
        await host.check_queues()


async def test_a_handled_message_is_completed_and_the_function_sees_its_properties(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    runner = runner_for(handler, bus, clock)
    await send(
        bus,
        "m-1",
        b'{"conversationId": "c-1"}',
        subject="route",
        correlation_id="corr-9",
        application_properties={"tenant": "t-1"},
    )
    assert await runner.poll_once() == 1
    await runner.wait_idle()

    (message,) = handler.messages
    assert message.get_body() == b'{"conversationId": "c-1"}'
    assert message.message_id == "m-1"
    assert message.delivery_count == 1
    assert message.correlation_id == "corr-9"
    assert message.application_properties == {"tenant": "t-1"}
    assert message.user_properties == {"tenant": "t-1"}
    assert message.subject == "route"
    assert message.label == "route"
    assert message.content_type == "application/json"
    assert message.enqueued_time_utc == START
    assert message.sequence_number is not None
    assert message.lock_token
    assert await depth(bus) == (0, 0)
    assert await runner.poll_once() == 0


async def test_a_failing_message_is_abandoned_and_redelivered_with_a_higher_delivery_count(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.fail = True
    runner = runner_for(handler, bus, clock)
    await send(bus, "m-1")
    for _ in range(2):
        await runner.poll_once()
        await runner.wait_idle()
    assert [m.delivery_count for m in handler.messages] == [1, 2]
    assert runner.stats.abandoned == 2
    assert await depth(bus) == (1, 0)


async def test_a_message_that_keeps_failing_is_dead_lettered_after_max_deliveries(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.fail = True
    runner = runner_for(handler, bus, clock)
    await send(bus, "poison")
    for _ in range(5):
        await runner.poll_once()
        await runner.wait_idle()
    assert [m.delivery_count for m in handler.messages] == [1, 2, 3]
    assert await depth(bus) == (0, 1)
    (dead,) = await bus.peek_dead_letters("jobs")
    assert dead.message_id == "poison"
    assert dead.reason == "MaxDeliveryCountExceeded"


async def test_a_message_whose_lock_expires_is_redelivered(bus: SqliteMessageBus, clock: ManualClock) -> None:
    handler = Handler()
    handler.block = True
    runner = runner_for(handler, bus, clock, max_auto_lock_renewal=timedelta(0))
    await send(bus, "slow")
    assert await runner.poll_once() == 1
    await asyncio.sleep(0)
    clock.advance(31)  # past the 30 s lock, and renewal is off
    assert await runner.poll_once() == 1
    await asyncio.sleep(0)
    assert [m.delivery_count for m in handler.messages] == [1, 2]
    handler.release.set()
    await runner.wait_idle()
    assert runner.stats.lock_lost == 1  # the first holder could not complete
    assert runner.stats.completed == 1  # the second one did
    assert await depth(bus) == (0, 0)


async def test_lock_renewal_keeps_a_long_running_message_from_being_redelivered_for_five_minutes(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.block = True
    runner = runner_for(handler, bus, clock)
    await send(bus, "long")
    await runner.poll_once()
    await asyncio.sleep(0)
    for _ in range(29):  # 4 min 50 s in 10 s steps
        clock.advance(10)
        assert await runner.poll_once() == 0
    assert len(handler.messages) == 1
    assert runner.stats.renewals >= 9

    clock.advance(60)  # renewal stops at maxAutoLockRenewalDuration; the lock then runs out
    assert await runner.poll_once() == 1
    await asyncio.sleep(0)
    assert [m.delivery_count for m in handler.messages] == [1, 2]
    handler.release.set()
    await runner.wait_idle()


async def test_a_scheduled_message_is_delivered_at_its_time(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    runner = runner_for(handler, bus, clock)
    await bus.schedule("jobs", OutgoingMessage(body=b"{}", message_id="later"), START + timedelta(minutes=10))
    clock.advance(minutes=9, seconds=59)
    assert await runner.poll_once() == 0
    clock.advance(1)
    assert await runner.poll_once() == 1
    await runner.wait_idle()
    assert [m.message_id for m in handler.messages] == ["later"]


async def test_concurrent_invocations_are_capped_at_max_concurrent_calls(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    handler.block = True
    runner = runner_for(handler, bus, clock, max_concurrent_calls=2)
    for index in range(5):
        await send(bus, f"m-{index}")
    assert await runner.poll_once() == 2
    assert await runner.poll_once() == 0
    await asyncio.sleep(0)
    assert len(handler.messages) == 2
    assert runner.in_flight == 2

    handler.release.set()
    await runner.wait_idle()
    handler.release.clear()
    assert await runner.poll_once() == 2
    handler.release.set()
    await runner.wait_idle()
    assert await runner.poll_once() == 1
    await runner.wait_idle()
    assert len(handler.messages) == 5
    assert await depth(bus) == (0, 0)


async def test_the_live_loop_feeds_the_function_until_stopped(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    handler = Handler()
    runner = runner_for(handler, bus, clock)
    stop = asyncio.Event()
    loop = asyncio.create_task(runner.run_forever(stop))
    for index in range(3):
        await send(bus, f"m-{index}")
    for _ in range(200):
        if runner.stats.completed == 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    await runner.stop(grace_seconds=1)
    assert sorted(m.message_id for m in handler.messages) == ["m-0", "m-1", "m-2"]


async def test_each_delivery_logs_one_line_with_ids_and_never_the_body(
    bus: SqliteMessageBus, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="psc.devhost")
    handler = Handler()
    handler.fail = True
    runner = runner_for(handler, bus, clock)
    await send(bus, "m-7", b'{"name": "Jane Roe"}', application_properties={"correlationId": "corr-7"})
    await runner.poll_once()
    await runner.wait_idle()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("invocation ")]
    assert len(lines) == 1
    line = lines[0]
    for expected in (
        "function=work",
        "trigger=serviceBus",
        "outcome=failed",
        "correlation_id=corr-7",
        "message_id=m-7",
        "delivery_count=1",
        "queue=jobs",
        "duration_ms=",
    ):
        assert expected in line
    assert "Jane Roe" not in caplog.text
