"""Timer triggers fire exactly when NCRONTAB (or a TimeSpan) says, on a controlled clock."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from devhost.discovery import TimerFunction
from devhost.errors import StartError
from devhost.invocation import Invoker
from devhost.schedules import Schedule
from devhost.timers import TimerScheduler
from shared.kernel.clock import ManualClock
from tests.devhost.conftest import discovered, new_app

START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def timer_app(
    schedule: str, *, run_on_startup: bool = False, fail: bool = False
) -> tuple[func.FunctionApp, list]:
    app = new_app()
    calls: list[func.TimerRequest] = []

    @app.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=run_on_startup)
    async def scan(timer: func.TimerRequest) -> None:
        calls.append(timer)
        if fail:
            raise RuntimeError("scan failed")

    return app, calls


def scheduler_for(
    app: func.FunctionApp, clock: ManualClock, environ: dict[str, str] | None = None
) -> TimerScheduler:
    return TimerScheduler(discovered(app, environ).timers, clock, Invoker())


def test_ncrontab_has_six_fields_with_seconds_first() -> None:
    every_ten_seconds = Schedule.parse("*/10 * * * * *")
    weekdays_at_half_past_nine = Schedule.parse("0 30 9 * * 1-5")
    assert every_ten_seconds.next_after(START) == START + timedelta(seconds=10)
    assert weekdays_at_half_past_nine.next_after(START) == START.replace(minute=30)
    saturday = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    assert weekdays_at_half_past_nine.next_after(saturday) == datetime(2026, 1, 12, 9, 30, tzinfo=UTC)


def test_a_five_field_unix_cron_is_refused_with_the_expected_shape() -> None:
    with pytest.raises(StartError, match="six fields"):
        Schedule.parse("*/5 * * * *")
    with pytest.raises(StartError, match="not a valid NCRONTAB"):
        Schedule.parse("0 61 * * * *")


def test_timespan_schedules_repeat_after_the_interval() -> None:
    assert Schedule.parse("00:05:00").next_after(START) == START + timedelta(minutes=5)
    assert Schedule.parse("1.00:00:00").next_after(START) == START + timedelta(days=1)


def test_website_time_zone_moves_the_schedule_including_dst() -> None:
    nine_in_berlin = Schedule.parse("0 0 9 * * *", time_zone="Europe/Berlin")
    assert nine_in_berlin.next_after(START) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)  # CET = UTC+1
    july = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
    assert nine_in_berlin.next_after(july) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # CEST = UTC+2
    with pytest.raises(StartError, match="WEBSITE_TIME_ZONE"):
        Schedule.parse("0 0 9 * * *", time_zone="W. Europe Standard Time")


def test_schedule_setting_references_are_resolved_from_the_environment() -> None:
    app, _ = timer_app("%SCAN_SCHEDULE%")
    timers = discovered(app, {"SCAN_SCHEDULE": "0 */15 * * * *"}).timers
    assert timers[0].schedule_text == "0 */15 * * * *"
    assert timers[0].schedule.next_after(START) == START + timedelta(minutes=15)


def test_an_unset_schedule_setting_fails_at_start_naming_it() -> None:
    app, _ = timer_app("%SCAN_SCHEDULE%")
    with pytest.raises(StartError, match="SCAN_SCHEDULE"):
        discovered(app, {})


async def test_a_controlled_clock_fires_exactly_the_due_runs() -> None:
    clock = ManualClock(START)
    app, calls = timer_app("0 */5 * * * *")
    scheduler = scheduler_for(app, clock)
    assert scheduler.arm() == []

    clock.set(START + timedelta(minutes=4, seconds=59))
    assert await scheduler.tick() == []

    clock.set(START + timedelta(minutes=5))
    fired = await scheduler.tick()
    assert [run.due for run in fired] == [START + timedelta(minutes=5)]
    assert await scheduler.tick() == []  # the same occurrence never fires twice

    clock.set(START + timedelta(minutes=10))
    fired = await scheduler.tick()
    assert [run.due for run in fired] == [START + timedelta(minutes=10)]
    assert len(calls) == 2
    assert [c.past_due for c in calls] == [False, False]


async def test_a_run_that_starts_late_is_past_due_and_missed_occurrences_fire_once() -> None:
    clock = ManualClock(START)
    app, calls = timer_app("0 */5 * * * *")
    scheduler = scheduler_for(app, clock)
    scheduler.arm()

    clock.set(START + timedelta(minutes=22))  # the laptop slept through 09:05, :10, :15 and :20
    fired = await scheduler.tick()
    assert len(fired) == 1
    assert fired[0].due == START + timedelta(minutes=5)
    assert calls[0].past_due is True
    assert scheduler.next_due() == START + timedelta(minutes=25)


async def test_run_on_startup_fires_once_when_the_host_starts() -> None:
    clock = ManualClock(START)
    app, calls = timer_app("0 0 3 * * *", run_on_startup=True)
    scheduler = scheduler_for(app, clock)
    startup = scheduler.arm()
    assert len(startup) == 1
    await scheduler.execute(startup[0])
    assert scheduler.arm() == []
    assert await scheduler.tick() == []
    assert len(calls) == 1
    assert calls[0].past_due is False
    assert scheduler.next_due() == datetime(2026, 1, 6, 3, 0, tzinfo=UTC)


async def test_a_failing_run_is_logged_and_the_schedule_continues(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="psc.devhost")
    clock = ManualClock(START)
    app, calls = timer_app("*/30 * * * * *", fail=True)
    scheduler = scheduler_for(app, clock)
    scheduler.arm()
    for _ in range(3):
        clock.advance(30)
        await scheduler.tick()
    assert len(calls) == 3
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("invocation ")]
    assert len(lines) == 3
    assert all("function=scan trigger=timer outcome=failed" in line for line in lines)


async def test_runs_of_one_timer_never_overlap_and_the_held_run_fires_past_due() -> None:
    clock = ManualClock(START)
    release = asyncio.Event()
    app = new_app()
    calls: list[bool] = []

    @app.timer_trigger(schedule="*/10 * * * * *", arg_name="timer")
    async def slow(timer: func.TimerRequest) -> None:
        calls.append(timer.past_due)
        await release.wait()

    scheduler = scheduler_for(app, clock)
    scheduler.arm()
    clock.advance(10)
    first = scheduler.due_runs()
    running = asyncio.create_task(scheduler.execute(first[0]))
    await asyncio.sleep(0)
    clock.advance(15)  # 09:00:20 came and went while the first run was busy
    assert scheduler.due_runs() == []
    release.set()
    await running
    second = await scheduler.tick()
    assert [run.due for run in second] == [START + timedelta(seconds=20)]
    assert calls == [False, True]


async def test_the_live_loop_sleeps_until_each_due_time() -> None:
    clock = ManualClock(START)
    stop = asyncio.Event()
    app = new_app()
    seen: list[datetime] = []

    @app.timer_trigger(schedule="*/5 * * * * *", arg_name="timer")
    async def tick(timer: func.TimerRequest) -> None:
        seen.append(clock.now())
        if len(seen) == 3:
            stop.set()

    scheduler = scheduler_for(app, clock)
    await asyncio.wait_for(scheduler.run_forever(stop), timeout=5)
    await scheduler.stop(grace_seconds=1)
    assert seen == [START + timedelta(seconds=s) for s in (5, 10, 15)]


def test_timer_functions_keep_their_schedule_text_for_the_banner() -> None:
    app, _ = timer_app("0 */5 * * * *", run_on_startup=True)
    timer: TimerFunction = discovered(app).timers[0]
    assert timer.schedule_text == "0 */5 * * * *"
    assert timer.run_on_startup is True


async def test_a_timer_with_a_retry_policy_is_rerun_until_it_succeeds() -> None:
    clock = ManualClock(START)
    app = new_app()
    attempts: list[int] = []

    @app.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:00:10")
    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
    async def scan(timer: func.TimerRequest, context: func.Context) -> None:
        attempts.append(context.retry_context.retry_count)
        if len(attempts) < 3:
            raise RuntimeError("scan failed")

    scheduler = scheduler_for(app, clock)
    clock.advance(minutes=5)

    await scheduler.tick()

    assert attempts == [0, 1, 2]
    assert clock.now() == START + timedelta(minutes=5, seconds=20)
