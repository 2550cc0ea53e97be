"""The one retry policy, on tenacity: every optimistic read-modify-write and every transient failure
our own code retries goes through `retry` (SDK clients keep their own bounded retries, see the
Cosmos and ACS adapters: stacking a second loop on them would multiply the waits).

A step is retried when it raises one of `on` (by default a lost ETag race: `PreconditionFailed`, or
`Again`, which a step raises for any other race it lost, such as a create that met a concurrent one),
never when it raises `IfMatchFailed` (the client's own precondition: answered as it is). The first
retry runs at once (the write that beat this one is done); later ones wait a random time in a
window that doubles from 2 ms up to 128 ms (full jitter, so workers that lost the same race do not
retry in lockstep); real time, not the business clock.
After `attempts` tries the last error is raised, or `give_up()` when the caller names the error
its users should see (a 409 "retry", a 503).

tenacity, not a hand loop: it is well kept, async-aware, and its stop/wait/retry parts are the
vocabulary this policy is written in. `without_waits()` lets tests run retries back to back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from shared.kernel.errors import PreconditionFailed
from shared.kernel.etags import IfMatchFailed

T = TypeVar("T")

ATTEMPTS = 20
FIRST_WINDOW = 0.002  # seconds: the first wait is up to 2 ms, then 4, 8, ... up to MAX_WINDOW
MAX_WINDOW = 0.128


class Again(Exception):
    """Raised by a step that lost a race (a concurrent create, a document gone meanwhile): the
    policy runs it again."""


LOST_RACE: tuple[type[Exception], ...] = (PreconditionFailed, Again)

_waits = True


@contextlib.contextmanager
def without_waits() -> Iterator[None]:
    """Retries run back to back while inside (tests: the policy, not the pauses, is under test)."""
    global _waits
    before, _waits = _waits, False
    try:
        yield
    finally:
        _waits = before


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds if _waits else 0)


def _sleep_sync(seconds: float) -> None:
    if _waits:
        time.sleep(seconds)


def _retried(on: tuple[type[BaseException], ...]) -> retry_if_exception:
    return retry_if_exception(lambda error: isinstance(error, on) and not isinstance(error, IfMatchFailed))


_WAIT = wait_random_exponential(multiplier=FIRST_WINDOW, max=MAX_WINDOW)


async def retry(
    step: Callable[[], Awaitable[T]],
    *,
    on: tuple[type[BaseException], ...] = LOST_RACE,
    attempts: int = ATTEMPTS,
    give_up: Callable[[], Exception] | None = None,
) -> T:
    """`await step()` until it returns without raising one of `on` (see the module docstring)."""
    try:
        # The first attempt runs outside tenacity: it nearly always succeeds, and building the
        # retrying state costs ~14 us, which the routing path would pay on every write.
        try:
            return await step()
        except on as error:
            if isinstance(error, IfMatchFailed) or attempts <= 1:
                raise
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts - 1),
            wait=_WAIT,
            retry=_retried(on),
            sleep=_sleep,
            reraise=True,
        ):
            with attempt:
                return await step()
    except on as error:
        if give_up is None or isinstance(error, IfMatchFailed):
            raise
        raise give_up() from None
    raise AssertionError("unreachable")  # pragma: no cover - tenacity either returns or raises


def retry_blocking(
    step: Callable[[], T],
    *,
    on: tuple[type[BaseException], ...],
    within: float,
    wait: float = 0.01,
) -> T:
    """A blocking step (a file opening, not a request) retried on `on` every `wait` seconds until
    `within` seconds have passed, then its last error."""
    for attempt in Retrying(
        stop=stop_after_delay(within),
        wait=lambda _: wait,
        retry=_retried(on),
        sleep=_sleep_sync,
        reraise=True,
    ):
        with attempt:
            return step()
    raise AssertionError("unreachable")  # pragma: no cover
