"""The delivery schedule's promises, for any arrival order, outcomes, delays and jitter.

A simulated driver plays the part the later consumer will: it queues callbacks, lets time pass,
and delivers whatever `due` answers, with outcomes hypothesis picks; then it drains the queue with
a bot that keeps failing. Every run is checked against PRODUCT.md's promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.callbacks.schedule import (
    MAX_PENDING,
    CallbackQueue,
    DeadLetter,
    PendingCallback,
    due,
    on_new_event,
    on_result,
    retry_delay,
    wake_at,
)
from shared.kernel.callbacks import RETRYABLE, DeliveryResult

START = datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
MAX_ATTEMPTS = 13  # derived in the schedule's docstring from its constants
REASONS = [
    "delivered",
    *sorted(RETRYABLE),
    "redirect",
    "client-error",
    "url-refused",
    "address-refused",
    "gone",
]


def callback(n: int) -> PendingCallback:
    return PendingCallback(
        id=f"cb-{n}",
        type="message",
        timestamp=START,
        data={"conversationId": "c-1", "botConversationId": "bot-1", "seq": n},
    )


def result(reason: str, retry_after: float | None = None) -> DeliveryResult:
    status = {"delivered": 200, "server-error": 503, "rate-limited": 429, "redirect": 302, "gone": 410}.get(
        reason
    )
    return DeliveryResult(
        ok=reason == "delivered",
        reason=reason,  # type: ignore[arg-type]
        status=status,
        retry_after=retry_after if reason in RETRYABLE else None,
    )


outcomes = st.tuples(
    st.sampled_from(REASONS), st.none() | st.floats(0, 7200), st.floats(0, 1, exclude_max=True)
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("event")),
        st.tuples(st.just("redeliver"), st.integers(0, 40)),
        st.tuples(st.just("wait"), st.floats(0, 5000)),
        st.tuples(st.just("attempt"), outcomes),
    ),
    max_size=120,
)


@dataclass
class Run:
    queue: CallbackQueue = field(default_factory=CallbackQueue)
    now: datetime = START
    queued: int = 0
    attempts: list[tuple[str, datetime]] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    first_retry_gaps: list[timedelta] = field(default_factory=list)

    def finished(self) -> set[str]:
        return set(self.delivered) | {d.id for d in self.dead}

    def attempt(self, reason: str, retry_after: float | None, jitter: float) -> None:
        head = due(self.queue, self.now)
        if head is None:
            return
        # In order: everything queued before the head has already ended one way or the other.
        earlier = {f"cb-{n}" for n in range(int(head.id.removeprefix("cb-")))}
        assert earlier <= self.finished(), "a callback went out before an earlier one ended"
        self.attempts.append((head.id, self.now))
        outcome = result(reason, retry_after)
        self.queue, dead = on_result(self.queue, head.id, outcome, self.now, jitter=jitter)
        self.dead += dead
        if outcome.ok:
            self.delivered.append(head.id)
        still = self.queue.pending[0] if self.queue.pending else None
        if still is not None and still.id == head.id and still.attempts == 1 and retry_after is None:
            assert self.queue.next_attempt_at is not None
            self.first_retry_gaps.append(self.queue.next_attempt_at - self.now)

    def drain(self, reason: str) -> None:
        for _ in range(10_000):
            wake = wake_at(self.queue, self.now)
            if wake is None:
                return
            self.now = wake
            self.attempt(reason, None, 0.0)
        raise AssertionError("the queue never drained")


@settings(max_examples=300, deadline=None)
@given(operations, st.sampled_from(["server-error", "timeout", "delivered", "client-error"]))
def test_callbacks_go_in_order_and_each_ends_delivered_or_dead_lettered(ops: list[tuple], tail: str) -> None:
    run = Run()
    for op in ops:
        if op[0] == "event":
            run.queue, dead = on_new_event(run.queue, callback(run.queued), run.now)
            run.dead += dead
            run.queued += 1
        elif op[0] == "redeliver" and op[1] < run.queued:
            before = run.queue
            run.queue, dead = on_new_event(run.queue, callback(op[1]), run.now)
            if f"cb-{op[1]}" in run.finished() and run.queued - op[1] <= 64:
                assert run.queue == before, "a finished callback was queued again"
                assert not dead
            run.dead += dead
        elif op[0] == "wait":
            run.now += timedelta(seconds=op[1])
        elif op[0] == "attempt":
            run.attempt(*op[1])
        assert len(run.queue.pending) <= MAX_PENDING
    run.drain(tail)

    queued = {f"cb-{n}" for n in range(run.queued)}
    assert run.finished() == queued, "a callback never ended"
    assert not set(run.delivered) & {d.id for d in run.dead}, "a callback both delivered and dead"
    assert len(run.delivered) == len(set(run.delivered)), "a callback delivered twice"
    # Attempts happen in queue order: the ids attempted never go back.
    order = [int(i.removeprefix("cb-")) for i, _ in run.attempts]
    assert order == sorted(order)
    for gap in run.first_retry_gaps:
        assert timedelta(0) < gap <= timedelta(seconds=30), "the first retry came later than 30 s"
    for letter in run.dead:
        attempts = sum(1 for i, _ in run.attempts if i == letter.id)
        assert attempts <= MAX_ATTEMPTS
        if letter.reason in RETRYABLE:
            assert letter.first_failure_at is not None
            assert letter.dead_lettered_at - letter.first_failure_at >= timedelta(hours=1), (
                "gave up within the hour"
            )
            assert letter.attempts >= 5
    assert json_round_trip(run.queue) == run.queue


def json_round_trip(queue: CallbackQueue) -> CallbackQueue:
    return CallbackQueue.model_validate_json(queue.model_dump_json())


@given(st.lists(st.floats(0, 1, exclude_max=True), min_size=20, max_size=20))
def test_a_failing_bot_is_retried_for_at_least_an_hour_then_the_next_callback_goes(
    jitters: list[float],
) -> None:
    queue, _ = on_new_event(CallbackQueue(), callback(0), START)
    queue, _ = on_new_event(queue, callback(1), START)
    now, tries, dead = START, [], []
    for jitter in jitters:
        head = due(queue, now)
        assert head is not None
        if head.id == "cb-1":
            break
        tries.append(now)
        queue, dead = on_result(queue, head.id, result("server-error"), now, jitter=jitter)
        now = wake_at(queue, now) or now
    assert [d.id for d in dead] == ["cb-0"]
    assert dead[0].reason == "server-error"
    assert dead[0].status == 503
    assert tries[1] - tries[0] <= timedelta(seconds=30)
    gaps = [b - a for a, b in pairwise(tries)]
    assert gaps[:4] == sorted(gaps[:4]), "the waits grow"
    assert max(gaps) <= timedelta(minutes=15)
    assert tries[-1] - tries[0] >= timedelta(hours=1)
    assert len(tries) <= MAX_ATTEMPTS
    assert due(queue, now) is not None
    assert due(queue, now).id == "cb-1"


def test_a_late_driver_still_tries_at_least_five_times() -> None:
    queue, _ = on_new_event(CallbackQueue(), callback(0), START)
    now = START
    for attempt in range(1, 6):
        queue, dead = on_result(queue, "cb-0", result("timeout"), now, jitter=0.5)
        assert bool(dead) == (attempt == 5)
        now += timedelta(hours=2)  # our worker was down far longer than the schedule asked


def test_a_redirect_or_a_refusal_is_dead_lettered_at_once_and_the_next_callback_goes() -> None:
    queue = CallbackQueue()
    for n in range(3):
        queue, _ = on_new_event(queue, callback(n), START)
    queue, dead = on_result(queue, "cb-0", result("redirect"), START)
    assert [(d.id, d.reason, d.status, d.attempts) for d in dead] == [("cb-0", "redirect", 302, 1)]
    assert due(queue, START).id == "cb-1"  # type: ignore[union-attr]
    queue, dead = on_result(queue, "cb-1", result("address-refused"), START)
    assert dead[0].reason == "address-refused"
    assert due(queue, START).id == "cb-2"  # type: ignore[union-attr]


def test_gone_stops_the_conversations_callbacks_and_dead_letters_the_rest_unsent() -> None:
    queue = CallbackQueue()
    for n in range(3):
        queue, _ = on_new_event(queue, callback(n), START)
    queue, dead = on_result(queue, "cb-0", result("gone"), START)
    assert [(d.id, d.reason, d.attempts) for d in dead] == [
        ("cb-0", "gone", 1),
        ("cb-1", "gone", 0),
        ("cb-2", "gone", 0),
    ]
    assert due(queue, START) is None
    assert wake_at(queue, START) is None
    queue, dead = on_new_event(queue, callback(3), START)
    assert [(d.id, d.reason) for d in dead] == [("cb-3", "gone")]
    assert queue.pending == []


def test_a_stale_or_duplicated_result_changes_nothing() -> None:
    queue, _ = on_new_event(CallbackQueue(), callback(0), START)
    queue, _ = on_new_event(queue, callback(1), START)
    assert on_result(queue, "cb-1", result("delivered"), START).queue == queue
    delivered, _ = on_result(queue, "cb-0", result("delivered"), START)
    assert on_result(delivered, "cb-0", result("server-error"), START).queue == delivered


def test_retry_after_is_honoured_up_to_the_longest_interval() -> None:
    assert retry_delay(1, 120.0, 0.0) == 120.0
    assert retry_delay(1, 7200.0, 0.0) == 900.0
    assert retry_delay(1, None, 0.0) == 10.0
    assert retry_delay(1, None, 0.999) < 20.0
    assert retry_delay(30, None, 0.999) < 900.0


def test_a_full_backlog_dead_letters_the_newcomer_and_keeps_the_order() -> None:
    queue = CallbackQueue()
    for n in range(MAX_PENDING + 1):
        queue, dead = on_new_event(queue, callback(n), START)
    assert [d.reason for d in dead] == ["backlog-full"]
    assert [p.id for p in queue.pending] == [f"cb-{n}" for n in range(MAX_PENDING)]
