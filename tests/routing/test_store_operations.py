"""What the hot paths cost in store operations, counted through the store port by the one
counting store (bench/counting.py, which `python -m bench.store_ops` prints with): the signed
escalation webhook at most 8 point operations, no query and 6 round trips in all (a batch is
one); the routing queue function at most 8 point operations and 2 in-partition queries per routed
conversation, never a cross-partition one."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from bench.counting import CountingStore, summary
from shared.kernel.clock import ManualClock
from shared.routing.api import Assignment, Presence
from shared.runtime import Runtime, use_runtime
from tests.conftest import invoke
from tests.functions.test_escalations import SECRET, sign
from tests.routing.support import deliver, put_agent, put_queue, put_rules

ESCALATIONS = 12


async def test_the_webhook_and_the_routing_function_stay_within_their_store_operations(
    runtime: Runtime, clock: ManualClock
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhook_secret": SECRET})
    await put_queue("q", acceptTimeoutSeconds=3600)
    await put_rules([], "q")
    for n in range(8):
        await put_agent(f"a-{n}", queues=["q"], capacity=100)
        await Assignment(runtime.store, runtime.bus, runtime.clock).set_presence(f"a-{n}", Presence.AVAILABLE)
    await deliver(runtime)  # presence notifications: not what is measured

    counting = CountingStore(runtime.store)
    measured = dataclasses.replace(runtime, store=counting)

    async def escalate(n: int) -> None:
        body: dict[str, Any] = {
            "botConversationId": f"ops-{n}",
            "patient": {"email": f"nobody{n}@example.org"},
            "reason": "Counting",
            "triage": {"urgency": "routine"},
            "transcript": [],
        }
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **sign(raw, msg_id=f"msg-{n}", at=clock.now())}
        answer = await invoke("escalate", method="POST", bearer=None, body=raw, headers=headers)
        assert answer.status == 202, answer.json

    with use_runtime(measured):
        # Steady state: the worker's caches of routing rules and queue settings (5 s) are warm.
        await escalate(-1)
        await deliver(measured)
        counting.take()
        for n in range(ESCALATIONS):
            await escalate(n)
        webhook = summary(counting.take(), ESCALATIONS)
        routed = await deliver(measured)
        routing = summary(counting.take(), routed)

    assert routed == ESCALATIONS
    assert webhook["point"] <= 8, webhook
    assert webhook["query.in-partition"] == webhook["query.cross-partition"] == 0, webhook
    # Issue 13: with the outbox, at most 6 round trips at the webhook (a transactional batch is one).
    assert sum(webhook.values()) <= 6, webhook
    assert routing["point"] <= 8, routing
    assert routing["query.in-partition"] <= 2, routing
    assert routing["query.cross-partition"] == 0, routing
