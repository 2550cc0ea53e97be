"""Service Bus queue triggers, and topic triggers without sessions (a subscription is received from
like a queue), fed from a `QueueReceiver` (the embedded bus), with the host's
peek-lock behaviour: complete on success, abandon on exception (the bus redelivers and finally
dead-letters), lock renewal while a function runs (up to maxAutoLockRenewalDuration), and at most
maxConcurrentCalls invocations at once per queue.

`poll_once()` is one deterministic step (renew due locks, then receive into free slots) that tests
drive with a ManualClock; `run_forever()` repeats it with a short idle backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from azure.functions.servicebus import ServiceBusMessage

from devhost.discovery import QueueFunction, TopicFunction
from devhost.invocation import Invoker, Stopwatch, log_failure, log_invocation, new_id
from devhost.pacing import arrivals_of, finish_or_cancel, sleep_or_wake
from shared.kernel.clock import Clock
from shared.kernel.messages import MessageLockLost, QueueReceiver, ReceivedMessage

logger = logging.getLogger("psc.devhost")

_MIN_IDLE_SECONDS = 0.05
_MAX_IDLE_SECONDS = 1.0
# While every slot is busy the loop still wakes this often to renew locks.
_BUSY_CHECK_SECONDS = 1.0


@dataclass
class _InFlight:
    message: ReceivedMessage
    received_at: datetime
    locked_until: datetime
    lock_span: timedelta
    task: asyncio.Task[None] | None = None
    renewing: bool = True


@dataclass
class QueueStats:
    """What the runner did, for the banner and tests."""

    completed: int = 0
    abandoned: int = 0
    lock_lost: int = 0
    renewals: int = 0
    in_flight: int = 0
    receive_errors: int = 0
    last_error: str | None = field(default=None)


class QueueRunner:
    """Feeds one queue- or subscription-triggered function from a QueueReceiver."""

    def __init__(
        self,
        function: QueueFunction | TopicFunction,
        receiver: QueueReceiver,
        clock: Clock,
        invoker: Invoker,
        *,
        max_concurrent_calls: int = 16,
        max_auto_lock_renewal: timedelta = timedelta(minutes=5),
    ) -> None:
        self.function = function
        self._receiver = receiver
        self._clock = clock
        self._invoker = invoker
        self._max_calls = max_concurrent_calls
        self._max_renewal = max_auto_lock_renewal
        self._in_flight: dict[str, _InFlight] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self.stats = QueueStats()

    @property
    def queue(self) -> str:
        return self.function.entity

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def poll_once(self) -> int:
        """Renew locks that are due, then receive into free slots; returns how many started.

        `KeyError` from the receiver (a queue it does not know) propagates."""
        await self.renew_due_locks()
        free = self._max_calls - len(self._in_flight)
        if free <= 0 or self._stopping:
            return 0
        messages = await self._receiver.receive(self.queue, max_messages=free)
        now = self._clock.now()
        for message in messages:
            span = message.locked_until - now
            entry = _InFlight(
                message=message,
                received_at=now,
                locked_until=message.locked_until,
                lock_span=span if span > timedelta(0) else timedelta(seconds=30),
            )
            self._in_flight[message.lock_token] = entry
            entry.task = asyncio.create_task(self._process(entry), name=f"queue:{self.function.target.name}")
            # A task cancelled before it ever ran skips _process's cleanup; this covers it.
            entry.task.add_done_callback(functools.partial(self._forget_task, message.lock_token))
        self.stats.in_flight = len(self._in_flight)
        return len(messages)

    async def renew_due_locks(self) -> int:
        """Renew each running message's lock once half its span has passed, until the message has
        been held for maxAutoLockRenewalDuration; returns the number renewed."""
        now = self._clock.now()
        renewed = 0
        for token, entry in list(self._in_flight.items()):
            if not entry.renewing:
                continue
            if now - entry.received_at >= self._max_renewal:
                entry.renewing = False
                logger.warning(
                    "lock renewal for message %s on %s stopped after %s; it will be redelivered when "
                    "its lock expires",
                    entry.message.message_id,
                    self.queue,
                    self._max_renewal,
                )
                continue
            if now < entry.locked_until - entry.lock_span / 2:
                continue
            try:
                entry.locked_until = await self._receiver.renew_lock(self.queue, token)
            except MessageLockLost:
                entry.renewing = False
                logger.warning("lock lost for message %s on %s", entry.message.message_id, self.queue)
                continue
            except Exception as exc:
                logger.warning(
                    "renewing the lock of message %s on %s failed (%s); will retry",
                    entry.message.message_id,
                    self.queue,
                    type(exc).__name__,
                )
                continue
            renewed += 1
            self.stats.renewals += 1
        return renewed

    async def wait_idle(self) -> None:
        """Wait until every started invocation has finished and been settled."""
        while self._in_flight:
            tasks = [e.task for e in self._in_flight.values() if e.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll until `stop`; an unknown queue ends this runner with an error in the log."""
        idle = _MIN_IDLE_SECONDS
        arrivals = arrivals_of(self._receiver, self.queue)
        while not stop.is_set():
            self._slot_freed.clear()
            for event in arrivals:
                event.clear()  # before looking: a message sent meanwhile sets it again
            try:
                started = await self.poll_once()
            except KeyError:
                logger.error(
                    "queue %s (function %s) is not in the bus catalogue; its trigger is stopped",
                    self.queue,
                    self.function.target.name,
                )
                return
            except Exception as exc:
                self.stats.receive_errors += 1
                self.stats.last_error = type(exc).__name__
                logger.warning("receiving from %s failed (%s); retrying", self.queue, type(exc).__name__)
                started = 0
                idle = _MAX_IDLE_SECONDS
            if len(self._in_flight) >= self._max_calls:
                await sleep_or_wake(self._clock, _BUSY_CHECK_SECONDS, (stop, self._slot_freed))
            elif started:
                idle = _MIN_IDLE_SECONDS
                await asyncio.sleep(0)
            else:
                await sleep_or_wake(self._clock, idle, (stop, *arrivals))
                idle = min(idle * 2, _MAX_IDLE_SECONDS)

    async def stop(self, grace_seconds: float) -> None:
        """Stop receiving; running invocations get the grace period, then are cancelled (and their
        messages abandoned so they come back promptly)."""
        self._stopping = True
        tasks = [e.task for e in self._in_flight.values() if e.task is not None]
        await finish_or_cancel(tasks, grace_seconds)

    async def _process(self, entry: _InFlight) -> None:
        message = entry.message
        name = self.function.target.name
        correlation_id = correlation_id_of(message)
        fields: dict[str, str | int] = {
            "queue": self.queue,
            "message_id": message.message_id,
            "delivery_count": message.delivery_count,
        }
        watch = Stopwatch()
        try:
            await self._invoker.call(
                self.function.target, to_functions_message(message), invocation_id=new_id()
            )
        except asyncio.CancelledError:
            await self._settle(entry, complete=False)
            raise
        except Exception as exc:
            log_failure(name, correlation_id, exc)
            outcome = await self._settle(entry, complete=False)
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
            outcome = await self._settle(entry, complete=True)
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
        finally:
            self._forget(message.lock_token)

    def _forget_task(self, lock_token: str, _: asyncio.Task[None]) -> None:
        self._forget(lock_token)

    def _forget(self, lock_token: str) -> None:
        self._in_flight.pop(lock_token, None)
        self.stats.in_flight = len(self._in_flight)
        self._slot_freed.set()

    async def _settle(self, entry: _InFlight, *, complete: bool) -> str:
        entry.renewing = False
        token = entry.message.lock_token
        try:
            if complete:
                await self._receiver.complete(self.queue, token)
                self.stats.completed += 1
                return "completed"
            await self._receiver.abandon(self.queue, token)
            self.stats.abandoned += 1
            return "abandoned"
        except MessageLockLost:
            self.stats.lock_lost += 1
            return "lock-lost"
        except Exception as exc:
            logger.warning(
                "settling message %s on %s failed (%s); it will be redelivered when its lock expires",
                entry.message.message_id,
                self.queue,
                type(exc).__name__,
            )
            return "settle-failed"


def correlation_id_of(message: ReceivedMessage) -> str:
    from_property = message.application_properties.get("correlationId")
    return message.correlation_id or (str(from_property) if from_property else None) or message.message_id


def to_functions_message(message: ReceivedMessage) -> ServiceBusMessage:
    properties = dict(message.application_properties)
    return ServiceBusMessage(
        body=message.body,
        message_id=message.message_id,
        application_properties=properties,
        user_properties=dict(properties),
        delivery_count=message.delivery_count,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        label=message.subject,
        subject=message.subject,
        enqueued_time_utc=message.enqueued_time,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time,
        sequence_number=message.sequence_number,
        enqueued_sequence_number=message.sequence_number,
        lock_token=message.lock_token,
        locked_until=message.locked_until,
        session_id=message.session_id,
    )
