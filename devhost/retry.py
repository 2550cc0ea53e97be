"""Function retry policies (`@app.retry(...)`) as the Functions host applies them.

The host runs a retry policy only for the triggers that support one: Azure Cosmos DB, timer (and
Event Hubs and Kafka, which the dev host does not run). Service Bus triggers (extension 5.x) retry
by redelivery instead: the message is abandoned and comes back until its max delivery count, so a
policy on them is ignored, and so is one on HTTP and Event Grid triggers (Event Grid retries through
its subscription). A policy re-runs the failed invocation with the same input, in the same host,
after a fixed delay or an exponentially growing one; `max_retry_count` -1 retries for ever. Only
when the retries are used up does the trigger move on (for Cosmos DB: checkpoint the lease, so the
batch is skipped). A host that stops during the retries keeps nothing: the input comes again from
its source (the lease was not checkpointed).

The policy reaches us as the worker reads it (`FunctionBuilder` setting `retry_policy`): strategy
`fixed_delay` with `delay_interval`, or `exponential_backoff` with `minimum_interval` and
`maximum_interval`, intervals as `HH:MM:SS`. The host adds jitter to the exponential delay; the dev
host does not (tests need exact delays).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from devhost.errors import StartError
from devhost.pacing import sleep_or_wake
from shared.kernel.clock import Clock

RETRY_POLICY_SETTING = "retry_policy"
SUPPORTED_STRATEGIES = ("fixed_delay", "exponential_backoff")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})$")


@dataclass(frozen=True)
class RetryPolicy:
    strategy: str
    max_retry_count: int  # -1: for ever
    delay_interval: timedelta = timedelta(0)
    minimum_interval: timedelta = timedelta(0)
    maximum_interval: timedelta = timedelta(0)

    def allows(self, retry: int) -> bool:
        """Whether retry number `retry` (1 for the first retry) may run."""
        return self.max_retry_count == -1 or retry <= self.max_retry_count

    def delay_before(self, retry: int) -> timedelta:
        if self.strategy == "fixed_delay":
            return self.delay_interval
        return min(self.maximum_interval, self.minimum_interval * (2 ** (retry - 1)))

    def describe(self) -> str:
        count = "for ever" if self.max_retry_count == -1 else f"up to {self.max_retry_count} times"
        if self.strategy == "fixed_delay":
            return f"retries {count} every {self.delay_interval.total_seconds():g} s"
        return (
            f"retries {count}, backing off {self.minimum_interval.total_seconds():g} s"
            f" to {self.maximum_interval.total_seconds():g} s"
        )


def _interval(value: Any, what: str) -> timedelta:
    match = _INTERVAL.match(str(value or ""))
    if match is None:
        raise StartError(f"{what} must be an interval like 00:00:05, not {value!r}")
    hours, minutes, seconds = (int(part) for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_retry_policy(settings: dict[str, Any] | None, *, function: str) -> RetryPolicy | None:
    """The function's retry policy, or None; a policy the worker or host would refuse is a StartError."""
    if not settings:
        return None
    what = f"function {function}: retry policy"
    strategy = settings.get("strategy")
    if strategy not in SUPPORTED_STRATEGIES:
        raise StartError(
            f"{what}: strategy must be one of {', '.join(SUPPORTED_STRATEGIES)}, not {strategy!r}"
        )
    try:
        count = int(settings.get("max_retry_count"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StartError(f"{what}: max_retry_count must be a whole number (-1 for ever)") from None
    if count < -1:
        raise StartError(f"{what}: max_retry_count must be -1 or more")
    if strategy == "fixed_delay":
        return RetryPolicy(strategy, count, delay_interval=_interval(settings.get("delay_interval"), what))
    minimum = _interval(settings.get("minimum_interval"), f"{what} minimum_interval")
    maximum = _interval(settings.get("maximum_interval"), f"{what} maximum_interval")
    if maximum < minimum:
        raise StartError(f"{what}: maximum_interval is shorter than minimum_interval")
    return RetryPolicy(strategy, count, minimum_interval=minimum, maximum_interval=maximum)


@dataclass(frozen=True)
class Attempts:
    """How a run under a policy ended: `succeeded`, or failed for good (`error` is the last
    failure), or `stopped` by the host between retries (nothing may be concluded then)."""

    succeeded: bool
    attempts: int
    stopped: bool = False
    error: BaseException | None = None


async def run_with_policy(
    invoke: Callable[[int], Awaitable[None]],
    policy: RetryPolicy | None,
    clock: Clock,
    stop: asyncio.Event | None = None,
    *,
    on_failure: Callable[[BaseException, int], None] | None = None,
) -> Attempts:
    """Call `invoke(retry_count)` until it returns, the policy gives up, or `stop` is set while
    waiting for the next retry. Without a policy there is one attempt."""
    retry = 0
    while True:
        try:
            await invoke(retry)
        except Exception as exc:
            if on_failure is not None:
                on_failure(exc, retry)
            retry += 1
            if policy is None or not policy.allows(retry):
                return Attempts(False, retry, error=exc)
            if stop is not None:
                await sleep_or_wake(clock, policy.delay_before(retry).total_seconds(), (stop,))
                if stop.is_set():
                    return Attempts(False, retry, stopped=True, error=exc)
            else:
                await clock.sleep(policy.delay_before(retry).total_seconds())
        else:
            return Attempts(True, retry + 1)
