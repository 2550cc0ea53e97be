"""Timer triggers: which runs are due, and the live loop that fires them.

`due_runs(now)` is the whole scheduling rule, so a test with a ManualClock can check exactly which
runs fire. As in the Functions host: runs of one timer never overlap (a run that comes due while the
previous one is still going fires when it ends); after missed occurrences (a laptop asleep) a timer
fires once, marked past due, then follows its schedule again; a failing run is logged and the
schedule continues (after the function's retry policy, if it has one, is used up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.functions.timer import TimerRequest

from devhost.discovery import TimerFunction
from devhost.invocation import Invoker, Stopwatch, log_failure, log_invocation, new_id
from devhost.pacing import finish_or_cancel, sleep_or_wake
from devhost.retry import run_with_policy
from shared.kernel.clock import Clock

logger = logging.getLogger("psc.devhost")

# The live loop re-reads the clock at least this often, so a wall-clock jump is noticed.
_MAX_SLEEP_SECONDS = 30.0
_NEVER_RAN = "0001-01-01T00:00:00"


@dataclass(frozen=True)
class DueRun:
    """One run to fire: `due` is when it was scheduled; `past_due` when it starts late."""

    function: TimerFunction
    due: datetime
    started: datetime
    past_due: bool


@dataclass
class _TimerState:
    function: TimerFunction
    next_due: datetime
    last_run: datetime | None = None
    running: bool = False


class TimerScheduler:
    """Fires timer functions on their schedules, reading time from a Clock."""

    def __init__(
        self,
        timers: Sequence[TimerFunction],
        clock: Clock,
        invoker: Invoker,
        *,
        past_due_tolerance: timedelta = timedelta(seconds=1),
    ) -> None:
        self._clock = clock
        self._invoker = invoker
        self._tolerance = past_due_tolerance
        now = clock.now()
        self._states = [_TimerState(t, t.schedule.next_after(now)) for t in timers]
        self._armed = False
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[bool]] = set()

    def arm(self) -> list[DueRun]:
        """Start the schedules from now; returns the `run_on_startup` runs (call once)."""
        if self._armed:
            return []
        self._armed = True
        now = self._clock.now()
        runs = []
        for state in self._states:
            state.next_due = state.function.schedule.next_after(now)
            if state.function.run_on_startup:
                state.running = True
                runs.append(DueRun(state.function, due=now, started=now, past_due=False))
        return runs

    def due_runs(self, now: datetime | None = None) -> list[DueRun]:
        """The runs due at `now`; each is taken (its timer moves on to its next occurrence)."""
        now = now or self._clock.now()
        runs = []
        for state in self._states:
            if state.running or state.next_due > now:
                continue
            runs.append(
                DueRun(
                    state.function,
                    due=state.next_due,
                    started=now,
                    past_due=now - state.next_due > self._tolerance,
                )
            )
            state.running = True
            state.next_due = state.function.schedule.next_after(now)
        return runs

    def next_due(self) -> datetime | None:
        """The earliest next occurrence among timers that are not running."""
        waiting = [s.next_due for s in self._states if not s.running]
        return min(waiting) if waiting else None

    def schedule_of(self, name: str) -> datetime | None:
        for state in self._states:
            if state.function.target.name == name:
                return state.next_due
        return None

    async def execute(self, run: DueRun) -> bool:
        """Run one due run to completion; returns whether it succeeded (failures are logged)."""
        state = next(s for s in self._states if s.function is run.function)
        name = run.function.target.name
        invocation_id = new_id()
        request = TimerRequest(
            past_due=run.past_due,
            schedule_status={
                "Last": state.last_run.isoformat() if state.last_run else _NEVER_RAN,
                "Next": state.next_due.isoformat(),
                "LastUpdated": run.started.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        watch = Stopwatch()
        policy = run.function.retry

        async def attempt(retry: int) -> None:
            await self._invoker.call(
                run.function.target,
                request,
                invocation_id=invocation_id,
                retry_count=retry,
                max_retry_count=policy.max_retry_count if policy else 0,
            )

        try:
            outcome = await run_with_policy(attempt, policy, self._clock)
            if not outcome.succeeded and outcome.error is not None:
                raise outcome.error
        except Exception as exc:
            log_failure(name, invocation_id, exc)
            log_invocation(
                function=name,
                trigger="timer",
                outcome="failed",
                duration_ms=watch.ms,
                correlation_id=invocation_id,
                failed=True,
                past_due=str(run.past_due).lower(),
            )
            return False
        finally:
            state.running = False
            state.last_run = run.started
            self._wake.set()
        log_invocation(
            function=name,
            trigger="timer",
            outcome="ok",
            duration_ms=watch.ms,
            correlation_id=invocation_id,
            past_due=str(run.past_due).lower(),
        )
        return True

    async def tick(self) -> list[DueRun]:
        """Fire every run due now and wait for them: the deterministic step tests drive."""
        runs = self.due_runs()
        await asyncio.gather(*(self.execute(run) for run in runs))
        return runs

    async def run_forever(self, stop: asyncio.Event) -> None:
        """The live loop: fire startup runs, then sleep until the next due time, until `stop`."""
        for run in self.arm():
            self._spawn(run)
        while not stop.is_set():
            self._wake.clear()
            for run in self.due_runs():
                self._spawn(run)
            upcoming = self.next_due()
            # Nothing scheduled while every timer is running: a finishing run wakes the loop.
            delay = (
                None
                if upcoming is None
                else min(_MAX_SLEEP_SECONDS, (upcoming - self._clock.now()).total_seconds())
            )
            await sleep_or_wake(self._clock, delay, (stop, self._wake))

    async def stop(self, grace_seconds: float) -> None:
        await finish_or_cancel(list(self._tasks), grace_seconds)

    def _spawn(self, run: DueRun) -> None:
        task = asyncio.create_task(self.execute(run), name=f"timer:{run.function.target.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
