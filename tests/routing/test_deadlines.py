"""Timed routing rules fire from scheduled routing messages at their deadlines, through the real
`routing` function on the embedded bus, without the sweep timer: the exact-match timeout hands a
conversation to the closest agent, overflow by wait transfers or ends it. A stale, repeated or
redelivered deadline message changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.kernel.times import stamp
from shared.routing.api import handle_routing_message
from shared.runtime import Runtime
from tests.routing.support import (
    conversation,
    deliver,
    enqueue,
    messages_of,
    presence,
    put_agent,
    put_queue,
    put_rules,
)


def at(start: datetime, seconds: float) -> str:
    return stamp(start + timedelta(seconds=seconds))


def deadline_message(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "conversationId": doc["id"], "queueId": doc["queueId"], "queuedAt": doc["queuedAt"]}


async def scheduled(runtime: Runtime) -> int:
    (depth,) = await runtime.bus.depths(["routing"])  # type: ignore[attr-defined]
    return int(depth.scheduled)


async def cardio_queue_with_a_closest_agent() -> None:
    await put_queue(
        "cardio", skillMatch="exact-then-closest", exactMatchTimeoutSeconds=30, requiredSkills={"cardio": 3}
    )
    await put_rules([], "cardio")
    await put_agent("a-junior", queues=["cardio"], skills={"cardio": 1})
    await presence("a-junior", "available")


async def test_an_exact_then_closest_conversation_goes_to_the_closest_agent_right_at_the_timeout(
    runtime: Runtime, clock: ManualClock
) -> None:
    await cardio_queue_with_a_closest_agent()
    start = clock.now()
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["status"] == "waiting"  # no exact match yet

    clock.advance(29)
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["status"] == "waiting"

    clock.advance(1)
    await deliver(runtime)  # the scheduled exact-timeout message; no sweep runs
    doc = await conversation(runtime, "c-1")
    assert (doc["status"], doc["agentId"]) == ("offered", "a-junior")
    assert doc["offeredAt"] == at(start, 30)


@pytest.mark.parametrize("action", ["end", "transfer"])
async def test_overflow_by_wait_happens_at_the_deadline_without_the_sweep(
    runtime: Runtime, clock: ManualClock, action: str
) -> None:
    await put_queue("backup")
    target = {"targetQueueId": "backup"} if action == "transfer" else {"message": "Call us tomorrow."}
    await put_queue("slow", overflow={"maxWaitSeconds": 60, "action": action, **target})
    await put_rules([], "slow")
    start = clock.now()
    await enqueue(runtime, "c-1")
    await deliver(runtime)

    clock.advance(59.9)
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["status"] == "waiting"

    clock.advance(0.1)
    await deliver(runtime)
    doc = await conversation(runtime, "c-1")
    if action == "end":
        assert (doc["status"], doc["endReason"]) == ("closed", "overflow-wait")
        assert (await messages_of(runtime, "c-1"))[-1]["text"] == "Call us tomorrow."
    else:
        assert (doc["status"], doc["queueId"], doc["overflowedFrom"]) == ("waiting", "backup", "slow")
        assert doc["queuedAt"] == at(start, 60)


async def test_a_redelivered_deadline_message_changes_nothing(runtime: Runtime, clock: ManualClock) -> None:
    await put_queue("backup")
    await put_queue("slow", overflow={"maxWaitSeconds": 60, "action": "transfer", "targetQueueId": "backup"})
    await put_rules([], "slow")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    message = deadline_message("wait-timeout", await conversation(runtime, "c-1"))
    clock.advance(60)
    await deliver(runtime)
    after = await conversation(runtime, "c-1")
    assert after["queueId"] == "backup"

    for _ in range(3):
        await handle_routing_message(runtime.store, runtime.bus, runtime.clock, message)
    again = await conversation(runtime, "c-1")
    assert again["_etag"] == after["_etag"]
    assert await deliver(runtime) == 0  # and it asked for no more routing


async def test_a_conversation_offered_before_its_deadline_is_left_alone(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("slow", overflow={"maxWaitSeconds": 60, "action": "end"})
    await put_rules([], "slow")
    await put_agent("a-1", queues=["slow"])
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    clock.advance(10)
    await presence("a-1", "available")
    await deliver(runtime)
    offered = await conversation(runtime, "c-1")
    assert offered["status"] == "offered"

    clock.advance(50)
    await handle_routing_message(
        runtime.store, runtime.bus, runtime.clock, deadline_message("wait-timeout", offered)
    )
    await deliver(runtime)  # the real scheduled message too; its offer (60 s) has not expired yet
    assert (await conversation(runtime, "c-1"))["_etag"] == offered["_etag"]


async def test_deadline_messages_are_scheduled_once_however_often_a_conversation_is_routed(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue(
        "cardio",
        skillMatch="exact-then-closest",
        exactMatchTimeoutSeconds=30,
        requiredSkills={"cardio": 3},
        overflow={"maxWaitSeconds": 600},
    )
    await put_rules([], "cardio")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    assert await scheduled(runtime) == 2  # exact-timeout and wait-timeout

    for _ in range(3):
        await handle_routing_message(
            runtime.store, runtime.bus, runtime.clock, {"kind": "conversation", "conversationId": "c-1"}
        )
    assert await scheduled(runtime) == 2  # same message ids: duplicate detection drops them


async def test_a_deadline_moved_later_by_the_administrator_fires_at_the_new_deadline(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("slow", overflow={"maxWaitSeconds": 60, "action": "end"})
    await put_rules([], "slow")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    clock.advance(30)
    await put_queue("slow", overflow={"maxWaitSeconds": 120, "action": "end"})

    clock.advance(30)
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["status"] == "waiting"
    clock.advance(60)
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["endReason"] == "overflow-wait"


async def test_a_deadline_message_a_little_early_by_our_clock_applies_the_rule_at_the_deadline(
    runtime: Runtime, clock: ManualClock
) -> None:
    """Service Bus enqueues by its own clock; a worker clock a second or two behind must not make
    the rule a no-op (nothing else would fire it before the sweep)."""
    await put_queue("slow", overflow={"maxWaitSeconds": 60, "action": "end"})
    await put_rules([], "slow")
    start = clock.now()
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    clock.advance(58)
    message = deadline_message("wait-timeout", await conversation(runtime, "c-1"))

    await handle_routing_message(runtime.store, runtime.bus, runtime.clock, message)

    doc = await conversation(runtime, "c-1")
    assert doc["endReason"] == "overflow-wait"
    assert doc["closedAt"] == at(start, 60)
