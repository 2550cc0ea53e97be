"""Calling a user function the way the Python worker does, and the one log line per invocation.

Async functions run on the event loop; sync ones in a worker thread (the Python worker does the
same). Every call runs with the host's Runtime installed, so `get_runtime()` inside a function
sees it whatever task or thread the call lands on.

Log lines carry ids, names, outcomes and timings only: never bodies, query strings or headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import traceback
import uuid
from typing import Any

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext

from devhost.discovery import CONTEXT_PARAMETER, Target
from shared.runtime import Runtime, use_runtime

logger = logging.getLogger("psc.devhost")


class Invoker:
    """Calls user functions inside the host's runtime context."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime = runtime

    async def call(
        self,
        target: Target,
        trigger_value: Any,
        *,
        invocation_id: str,
        retry_count: int = 0,
        max_retry_count: int = 0,
    ) -> Any:
        kwargs: dict[str, Any] = {target.arg_name: trigger_value}
        if target.wants_context:
            kwargs[CONTEXT_PARAMETER] = InvocationContext(
                invocation_id, target.name, retry_count=retry_count, max_retry_count=max_retry_count
            )
        scope = use_runtime(self._runtime) if self._runtime is not None else contextlib.nullcontext()
        with scope:
            if target.is_async:
                return await target.user_function(**kwargs)
            # to_thread copies the context, so the runtime override reaches the thread too.
            return await asyncio.to_thread(functools.partial(target.user_function, **kwargs))


class InvocationContext(func.Context):
    """The `context` argument: invocation id, function name and retry context, as the worker
    provides (`retry_context.retry_count` counts the retries of a function with a retry policy)."""

    def __init__(
        self, invocation_id: str, function_name: str, *, retry_count: int = 0, max_retry_count: int = 0
    ) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._thread_local = threading.local()
        self._retry = _RetryContext(retry_count, max_retry_count)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> TraceContext:
        return _NoTraceContext()

    @property
    def retry_context(self) -> RetryContext:
        return self._retry


class _NoTraceContext(TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> Any:
        return None


def new_id() -> str:
    return uuid.uuid4().hex


class Stopwatch:
    """Wall-clock duration of one invocation (real time even under a ManualClock)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    @property
    def ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000


def log_invocation(
    *,
    function: str,
    trigger: str,
    outcome: str,
    duration_ms: float,
    correlation_id: str,
    failed: bool = False,
    **fields: str | int,
) -> None:
    """The one line per invocation. Values must be ids, names or numbers, never payload: the
    project's log guard (shared.kernel.observability) masks anything that looks like free text."""
    template = "invocation function=%s trigger=%s outcome=%s duration_ms=%.1f correlation_id=%s"
    template += "".join(f" {key}=%s" for key in fields)
    logger.log(
        logging.ERROR if failed else logging.INFO,
        template,
        function,
        trigger,
        outcome,
        duration_ms,
        correlation_id,
        *fields.values(),
        extra={
            "function": function,
            "trigger": trigger,
            "outcome": outcome,
            "duration_ms": round(duration_ms, 1),
            "correlation_id": correlation_id,
            **fields,
        },
    )


def log_failure(function: str, correlation_id: str, exc: BaseException) -> None:
    """The exception type and stack frames, without the exception's message: messages may quote
    patient data."""
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip().replace("%", "%%")
    logger.error(
        "function %s failed with %s (correlation_id=%s); exception message withheld\n" + frames,
        function,
        type(exc).__qualname__,
        correlation_id,
        extra={"function": function, "error_type": type(exc).__qualname__, "correlation_id": correlation_id},
    )
