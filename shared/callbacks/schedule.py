"""When each bot callback of a conversation is sent: in order, at least once, retried, then
dead-lettered. Pure functions over a JSON-serialisable state, so it can live in a document.

The promises (PRODUCT.md "Bot callbacks"), each a property test in tests/unit:

* Per conversation, callbacks go in the order they were queued: only the head is ever due, and
  a failed head blocks the ones behind it.
* A retryable failure (5xx, timeout, connection, TLS, 408/425/429) is retried: the first retry
  within 30 s of the first failure (10-20 s), then growing (x3 with equal jitter, capped at 15
  minutes; a Retry-After up to 15 minutes is honoured), for at least an hour: the head is given
  up only at a failure at least `RETRY_WINDOW` after its first failure and after at least
  `MIN_ATTEMPTS` attempts, so an outage on our side (a late driver) cannot use the hour up in two
  attempts. Then it is dead-lettered with its last reason and the next callback starts afresh.
* A permanent failure (redirect, other 4xx, refused URL or address) dead-letters the head at once.
  410 Gone stops the conversation's callbacks: everything pending and everything queued later is
  dead-lettered unsent, as the Standard Webhooks spec advises for 410.
* Every callback ends delivered or dead-lettered; attempts per callback are bounded (at most 13
  with these constants).

How it is meant to be driven (the consumer that turns events into callbacks comes later): one
`CallbackQueue` document per conversation, read and written with If-Match, changed only by the
conversation's Service Bus session (one worker at a time per conversation):

1. An event that makes a callback arrives: `on_new_event(queue, callback, now)`; redelivery of
   the same callback id changes nothing.
2. While `due(queue, now)` answers a callback: deliver it (`CallbackSender.deliver` with
   `message_id=callback.id`), then `on_result(queue, callback.id, result, now)`, and save. A crash
   between delivery and save sends again: at least once; bots dedupe on `webhook-id`.
3. Nothing due but `wake_at(queue, now)` answers a time: schedule a wake-up message into the same
   session for then; the wake-up runs step 2 (one that finds nothing due does nothing).
4. Every `DeadLetter` a step returns is recorded where ops can see it, and logged by id and reason.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field, JsonValue

from shared.kernel.callbacks import CallbackType, DeliveryReason, DeliveryResult

FIRST_RETRY_BASE = 20.0  # seconds; with equal jitter the first retry comes 10-20 s after a failure
BACKOFF_FACTOR = 3.0
MAX_INTERVAL = 900.0  # 15 minutes between attempts at most (also the cap on Retry-After)
RETRY_WINDOW = timedelta(hours=1)
MIN_ATTEMPTS = 5
MAX_PENDING = 100  # a conversation document stays far below Cosmos DB's 2 MB item limit
RECENT = 64  # finished ids remembered, so a redelivered event is not queued twice

DeadReason = DeliveryReason | Literal["backlog-full"]


class PendingCallback(BaseModel):
    """A callback waiting to be delivered. `id` is its `webhook-id`, the same on every attempt;
    `timestamp` is when the event happened (the body's, not the signature's)."""

    id: str = Field(min_length=1, max_length=256)
    type: CallbackType
    timestamp: datetime
    data: dict[str, JsonValue]
    attempts: int = 0
    first_failure_at: datetime | None = None
    last_reason: DeliveryReason | None = None
    last_status: int | None = None


class DeadLetter(BaseModel):
    """A callback given up on, with why: ids, type and reason only (no data: it may hold PHI)."""

    id: str
    type: CallbackType
    reason: DeadReason
    status: int | None = None
    attempts: int
    first_failure_at: datetime | None = None
    dead_lettered_at: datetime


class CallbackQueue(BaseModel):
    """One conversation's delivery state. `next_attempt_at` is when the head may be tried again
    (None: now); `stopped` is set when the bot answered 410 Gone."""

    pending: list[PendingCallback] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    finished: list[str] = Field(default_factory=list)
    stopped: DeliveryReason | None = None
    delivered: int = 0
    dead_lettered: int = 0


class Step(NamedTuple):
    queue: CallbackQueue
    dead: list[DeadLetter]


def on_new_event(queue: CallbackQueue, callback: PendingCallback, now: datetime) -> Step:
    """Queue a callback behind the others (unchanged if its id is pending or recently finished)."""
    if any(p.id == callback.id for p in queue.pending) or callback.id in queue.finished:
        return Step(queue, [])
    fresh = callback.model_copy(
        update={"attempts": 0, "first_failure_at": None, "last_reason": None, "last_status": None}
    )
    if queue.stopped is not None:
        return _bury(queue, fresh, queue.stopped, now, pop=False)
    if len(queue.pending) >= MAX_PENDING:
        return _bury(queue, fresh, "backlog-full", now, pop=False)
    update: dict[str, object] = {"pending": [*queue.pending, fresh]}
    if not queue.pending:
        update["next_attempt_at"] = None
    return Step(queue.model_copy(update=update), [])


def due(queue: CallbackQueue, now: datetime) -> PendingCallback | None:
    """The callback to deliver now: the head, once its next attempt time has come."""
    if queue.stopped is not None or not queue.pending:
        return None
    if queue.next_attempt_at is not None and now < queue.next_attempt_at:
        return None
    return queue.pending[0]


def wake_at(queue: CallbackQueue, now: datetime) -> datetime | None:
    """When the driver should look again: None when nothing is pending."""
    if queue.stopped is not None or not queue.pending:
        return None
    return max(now, queue.next_attempt_at or now)


def on_result(
    queue: CallbackQueue,
    callback_id: str,
    result: DeliveryResult,
    now: datetime,
    *,
    jitter: float | None = None,
) -> Step:
    """Record an attempt at the head. A result for anything but the head (stale, duplicated) is
    ignored. `jitter` in [0, 1) spreads retries (random when None)."""
    if not queue.pending or queue.pending[0].id != callback_id:
        return Step(queue, [])
    head = queue.pending[0]
    if result.ok:
        return Step(
            queue.model_copy(
                update={
                    "pending": queue.pending[1:],
                    "next_attempt_at": None,
                    "finished": _remember(queue.finished, head.id),
                    "delivered": queue.delivered + 1,
                }
            ),
            [],
        )
    tried = head.model_copy(
        update={
            "attempts": head.attempts + 1,
            "first_failure_at": head.first_failure_at or now,
            "last_reason": result.reason,
            "last_status": result.status,
        }
    )
    if result.gone:
        stopped = queue.model_copy(update={"stopped": result.reason})
        dead: list[DeadLetter] = []
        for callback in [tried, *queue.pending[1:]]:
            stopped, buried = _bury(stopped, callback, result.reason, now, pop=True)
            dead += buried
        return Step(stopped, dead)
    if not result.retryable:
        return _bury(queue, tried, result.reason, now, pop=True)
    assert tried.first_failure_at is not None
    if tried.attempts >= MIN_ATTEMPTS and now - tried.first_failure_at >= RETRY_WINDOW:
        return _bury(queue, tried, result.reason, now, pop=True)
    if jitter is None:
        jitter = random.random()  # noqa: S311 - spreads retries apart; not a secret
    wait = retry_delay(tried.attempts, result.retry_after, jitter)
    return Step(
        queue.model_copy(
            update={
                "pending": [tried, *queue.pending[1:]],
                "next_attempt_at": now + timedelta(seconds=wait),
            }
        ),
        [],
    )


def retry_delay(attempts: int, retry_after: float | None, jitter: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base 20 s x3 per failure,
    capped at 15 minutes, equal jitter (half fixed, half random), at least a Retry-After up to the
    cap."""
    base = min(MAX_INTERVAL, FIRST_RETRY_BASE * BACKOFF_FACTOR ** min(attempts - 1, 16))
    wait = base / 2 + base / 2 * min(max(jitter, 0.0), 1.0)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_INTERVAL))
    return wait


def _bury(
    queue: CallbackQueue, callback: PendingCallback, reason: DeadReason, now: datetime, *, pop: bool
) -> Step:
    letter = DeadLetter(
        id=callback.id,
        type=callback.type,
        reason=reason,
        status=callback.last_status,
        attempts=callback.attempts,
        first_failure_at=callback.first_failure_at,
        dead_lettered_at=now,
    )
    update: dict[str, object] = {
        "finished": _remember(queue.finished, callback.id),
        "dead_lettered": queue.dead_lettered + 1,
    }
    if pop:
        update["pending"] = [p for p in queue.pending if p.id != callback.id]
        update["next_attempt_at"] = None
    return Step(queue.model_copy(update=update), [letter])


def _remember(finished: list[str], callback_id: str) -> list[str]:
    return [*finished, callback_id][-RECENT:]
