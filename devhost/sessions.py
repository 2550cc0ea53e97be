"""Session-enabled Service Bus topic triggers fed from a `SessionReceiver` (the embedded bus), as the
Functions host's session processor runs them (Service Bus extension 5.x, `ServiceBusOptions`):

- up to `maxConcurrentSessions` sessions at once (host.json `extensions.serviceBus`; default 8),
  each accepted as "the next available session" and held by this host alone;
- one message of a session at a time, in order (`MaxConcurrentCallsPerSession` is 1): complete on
  success, abandon on exception (the message comes straight back, until its max delivery count
  dead-letters it and the session moves on);
- the session lock renewed while it is held, up to `maxAutoLockRenewalDuration`;
- a session with no message for `sessionIdleTimeout` (default: the client's try timeout, 60 s) is
  released so the slot can take another.

`poll_once()` is one deterministic step (renew due session locks, let idle sessions go or look for
their next message, accept sessions into free slots) that tests drive with a ManualClock;
`run_forever()` repeats it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from devhost.discovery import TopicFunction
from devhost.invocation import Invoker, Stopwatch, log_failure, log_invocation, new_id
from devhost.pacing import arrivals_of, finish_or_cancel, sleep_or_wake
from devhost.queues import QueueStats, correlation_id_of, to_functions_message
from shared.kernel.clock import Clock
from shared.kernel.messages import (
    MessageLockLost,
    QueueReceiver,
    ReceivedMessage,
    SessionLock,
    SessionLockLost,
    SessionReceiver,
)

logger = logging.getLogger("psc.devhost")

_MIN_IDLE_SECONDS = 0.05
_MAX_IDLE_SECONDS = 1.0


class SessionBus(QueueReceiver, SessionReceiver, Protocol):
    """Accepts sessions and settles their messages."""


@dataclass
class _HeldSession:
    lock: SessionLock
    accepted_at: datetime
    last_message_at: datetime
    lock_span: timedelta
    task: asyncio.Task[None] | None = None
    renewing: bool = True


@dataclass
class SessionStats(QueueStats):
    sessions_accepted: int = 0
    sessions_released: int = 0
    sessions_lost: int = 0
    active_sessions: int = field(default=0)


class SessionRunner:
    """Feeds one session-enabled topic-triggered function."""

    def __init__(
        self,
        function: TopicFunction,
        bus: SessionBus,
        clock: Clock,
        invoker: Invoker,
        *,
        max_concurrent_sessions: int = 8,
        session_idle_timeout: timedelta = timedelta(seconds=60),
        max_auto_lock_renewal: timedelta = timedelta(minutes=5),
    ) -> None:
        self.function = function
        self._bus = bus
        self._clock = clock
        self._invoker = invoker
        self._max_sessions = max_concurrent_sessions
        self._idle_timeout = session_idle_timeout
        self._max_renewal = max_auto_lock_renewal
        self._held: dict[str, _HeldSession] = {}
        self._work_done = asyncio.Event()
        self._stopping = False
        self.stats = SessionStats()

    @property
    def queue(self) -> str:
        return self.function.entity

    @property
    def active_sessions(self) -> int:
        return len(self._held)

    async def poll_once(self) -> int:
        """Renew due session locks, release sessions idle for the idle timeout, look for the next
        message of the others, then accept sessions into free slots; returns how many were accepted."""
        await self._renew_due_locks()
        now = self._clock.now()
        waiting: list[_HeldSession] = []
        for held in list(self._held.values()):
            if held.task is not None:
                continue
            if now - held.last_message_at >= self._idle_timeout or self._stopping:
                await self._release(held)
            else:
                waiting.append(held)
        ready = await self._ready(waiting)
        for held in waiting:
            if ready is None or held.lock.session_id in ready:
                self._serve(held)
        accepted = 0
        while not self._stopping and len(self._held) < self._max_sessions:
            lock = await self._bus.accept_next_session(self.queue)
            if lock is None:
                break
            accepted += 1
            self.stats.sessions_accepted += 1
            span = lock.locked_until - now
            held = _HeldSession(lock, now, now, span if span > timedelta(0) else timedelta(seconds=30))
            self._held[lock.lock_token] = held
            self._serve(held)
        self.stats.active_sessions = len(self._held)
        return accepted

    async def wait_idle(self) -> None:
        """Wait until every session's current run of messages is handled."""
        while tasks := [h.task for h in self._held.values() if h.task is not None]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_forever(self, stop: asyncio.Event) -> None:
        idle = _MIN_IDLE_SECONDS
        arrivals = arrivals_of(self._bus, self.queue)
        while not stop.is_set():
            self._work_done.clear()
            for event in arrivals:
                event.clear()  # before looking: a message sent meanwhile sets it again
            try:
                accepted = await self.poll_once()
            except KeyError:
                logger.error(
                    "subscription %s (function %s) is not in the bus catalogue; its trigger is stopped",
                    self.queue,
                    self.function.target.name,
                )
                return
            except Exception as exc:
                self.stats.receive_errors += 1
                self.stats.last_error = type(exc).__name__
                logger.warning(
                    "accepting sessions on %s failed (%s); retrying", self.queue, type(exc).__name__
                )
                accepted, idle = 0, _MAX_IDLE_SECONDS
            if accepted:
                idle = _MIN_IDLE_SECONDS
                await asyncio.sleep(0)
            else:
                await sleep_or_wake(self._clock, idle, (stop, self._work_done, *arrivals))
                idle = min(idle * 2, _MAX_IDLE_SECONDS)

    async def stop(self, grace_seconds: float) -> None:
        """Stop accepting; running invocations get the grace period, then every session is released
        (an interrupted message comes back to the next holder)."""
        self._stopping = True
        await finish_or_cancel([h.task for h in self._held.values() if h.task is not None], grace_seconds)
        for held in list(self._held.values()):
            await self._release(held)

    async def _ready(self, waiting: list[_HeldSession]) -> set[str] | None:
        """The held sessions with a message now, asked in one call when the bus can answer it (the
        embedded bus); None: look in each (a receive per session, as before)."""
        ask = getattr(self._bus, "sessions_with_messages", None)
        if ask is None or not waiting:
            return None
        found: set[str] = await ask(self.queue, [h.lock.session_id for h in waiting])
        return found

    def _serve(self, held: _HeldSession) -> None:
        held.task = asyncio.create_task(self._drain(held), name=f"session:{self.function.target.name}")

    async def _drain(self, held: _HeldSession) -> None:
        """Handle the session's messages one at a time until it has none available now."""
        try:
            while not self._stopping:
                try:
                    messages = await self._bus.receive_from_session(held.lock)
                except SessionLockLost:
                    self.stats.sessions_lost += 1
                    logger.warning("lost the lock on session %s of %s", held.lock.session_id, self.queue)
                    self._held.pop(held.lock.lock_token, None)
                    return
                if not messages:
                    return
                (message,) = messages
                held.last_message_at = self._clock.now()
                await self._handle(message)
        finally:
            held.task = None
            self._work_done.set()

    async def _handle(self, message: ReceivedMessage) -> None:
        name = self.function.target.name
        correlation_id = correlation_id_of(message)
        fields: dict[str, str | int] = {
            "queue": self.queue,
            "session_id": message.session_id or "",
            "message_id": message.message_id,
            "delivery_count": message.delivery_count,
        }
        watch = Stopwatch()
        try:
            await self._invoker.call(
                self.function.target, to_functions_message(message), invocation_id=new_id()
            )
        except asyncio.CancelledError:
            await self._settle(message.lock_token, complete=False)
            raise
        except Exception as exc:
            log_failure(name, correlation_id, exc)
            outcome = await self._settle(message.lock_token, complete=False)
            log_invocation(
                function=name,
                trigger="serviceBus",
                outcome="failed",
                duration_ms=watch.ms,
                correlation_id=correlation_id,
                failed=True,
                settled=outcome,
                **fields,
            )
        else:
            outcome = await self._settle(message.lock_token, complete=True)
            log_invocation(
                function=name,
                trigger="serviceBus",
                outcome="ok",
                duration_ms=watch.ms,
                correlation_id=correlation_id,
                failed=outcome != "completed",
                settled=outcome,
                **fields,
            )

    async def _settle(self, lock_token: str, *, complete: bool) -> str:
        try:
            if complete:
                await self._bus.complete(self.queue, lock_token)
                self.stats.completed += 1
                return "completed"
            await self._bus.abandon(self.queue, lock_token)
            self.stats.abandoned += 1
            return "abandoned"
        except MessageLockLost:
            self.stats.lock_lost += 1
            return "lock-lost"
        except Exception as exc:
            logger.warning("settling a message on %s failed (%s)", self.queue, type(exc).__name__)
            return "settle-failed"

    async def _renew_due_locks(self) -> None:
        now = self._clock.now()
        for held in list(self._held.values()):
            if not held.renewing:
                continue
            if now - held.accepted_at >= self._max_renewal:
                held.renewing = False
                logger.warning(
                    "session lock renewal for %s on %s stopped after %s",
                    held.lock.session_id,
                    self.queue,
                    self._max_renewal,
                )
                continue
            if now < held.lock.locked_until - held.lock_span / 2:
                continue
            try:
                held.lock = await self._bus.renew_session_lock(held.lock)
                self.stats.renewals += 1
            except SessionLockLost:
                held.renewing = False
                self.stats.sessions_lost += 1
                if held.task is None:
                    self._held.pop(held.lock.lock_token, None)
            except Exception as exc:
                logger.warning(
                    "renewing session %s failed (%s); will retry", held.lock.session_id, type(exc).__name__
                )

    async def _release(self, held: _HeldSession) -> None:
        self._held.pop(held.lock.lock_token, None)
        try:
            await self._bus.release_session(held.lock)
            self.stats.sessions_released += 1
        except Exception as exc:
            logger.warning("releasing session %s failed (%s)", held.lock.session_id, type(exc).__name__)
