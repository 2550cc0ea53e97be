"""Waiting on a Clock that can be cut short: the loops sleep on the clock (so a ManualClock drives
them in tests) but wake early when there is work or when the host stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from shared.kernel.clock import Clock


def arrivals_of(bus: object, entity: str) -> tuple[asyncio.Event, ...]:
    """The bus's arrival signal for `entity` when it has one (the embedded bus, for sends made in
    this process): a receiver waits on it as well as on its back-off, as a Service Bus receiver
    is handed a message when it arrives instead of finding it at its next poll."""
    signal = getattr(bus, "arrivals", None)
    return (signal(entity),) if callable(signal) else ()


async def sleep_or_wake(clock: Clock, seconds: float | None, events: Iterable[asyncio.Event]) -> None:
    """Sleep `seconds` on `clock` (None: no time limit), returning as soon as any of `events` is set."""
    waiters: list[asyncio.Future[object]] = []
    if seconds is not None:
        waiters.append(asyncio.ensure_future(clock.sleep(max(seconds, 0))))
    waiters.extend(asyncio.ensure_future(event.wait()) for event in events)
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


async def finish_or_cancel(tasks: Iterable[asyncio.Task[Any]], grace_seconds: float) -> None:
    """Let running tasks finish within the grace period, then cancel the rest and wait for them."""
    pending = {task for task in tasks if not task.done()}
    if not pending:
        return
    _, still_running = await asyncio.wait(pending, timeout=grace_seconds)
    for task in still_running:
        task.cancel()
    if still_running:
        await asyncio.gather(*still_running, return_exceptions=True)
