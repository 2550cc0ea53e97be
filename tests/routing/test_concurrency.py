"""Invariants under concurrency and redelivery, with real concurrent workers: several worker
threads, each with its own event loop and runtime (its own SQLite connections, as separate
function instances would have), drain the same routing queue in parallel with the test's own
worker, while agents change presence and every message is delivered twice."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

from shared.kernel.clock import ManualClock
from shared.kernel.messaging import json_message
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import make_settings
from tests.routing.support import (
    all_items,
    deliver,
    enqueue,
    presence,
    put_agent,
    put_queue,
    put_rules,
)

WORKERS = 4
CONVERSATIONS = 120
FLIPS_EVERY = 15
AGENTS = 16


async def worker(runtime: Runtime, stop: asyncio.Event | threading.Event) -> int:
    handled = 0
    with use_runtime(runtime):
        while not stop.is_set():
            done = await deliver(runtime, rounds=1, batch=5)
            handled += done
            if not done:
                await asyncio.sleep(0.005)
    return handled


def worker_thread(data_dir: Path, clock: ManualClock, stop: threading.Event, handled: list[int]) -> None:
    async def run() -> None:
        peer = await build_runtime(make_settings(data_dir), clock=clock)
        try:
            handled.append(await worker(peer, stop))
        finally:
            await peer.close()

    asyncio.run(run())


async def test_concurrent_workers_never_double_assign_or_exceed_capacity(
    tmp_path: Path, runtime: Runtime
) -> None:
    rng = random.Random(11)
    await put_queue("q1", priority=1)
    await put_queue("q2", priority=2, assignmentMethod="round-robin")
    await put_rules([{"when": {"urgency": ["urgent"]}, "queueId": "q1"}], "q2")
    for n in range(AGENTS):
        queues = ["q1", "q2"] if n % 3 else ["q2"]
        await put_agent(f"a-{n}", queues=queues, capacity=rng.randint(1, 3), languages=["en"])
        await presence(f"a-{n}", "available" if n % 4 else "offline")

    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    stop = asyncio.Event()
    thread_stop = threading.Event()
    flipped: set[str] = set()
    handled: list[int] = []
    threads = [
        threading.Thread(target=worker_thread, args=(tmp_path / "data", clock, thread_stop, handled))
        for _ in range(WORKERS - 1)
    ]
    for thread in threads:
        thread.start()
    tasks = [asyncio.create_task(worker(runtime, stop))]
    try:
        for n in range(CONVERSATIONS):
            await enqueue(runtime, f"c-{n}", urgency="urgent" if n % 2 else "routine")
            # A redelivery the broker's duplicate detection would not catch (another message id).
            await runtime.bus.send(
                "routing",
                json_message(
                    {"kind": "conversation", "conversationId": f"c-{n}"}, message_id=f"dup:{n}", subject="x"
                ),
            )
            if n % FLIPS_EVERY == 0:
                flip = f"a-{rng.randrange(AGENTS)}"
                flipped.add(flip)
                await presence(flip, rng.choice(["available", "busy", "away", "offline"]))
            if n % 7 == 0:
                await asyncio.sleep(0)
        for _ in range(400):
            await asyncio.sleep(0.01)
            depth = await runtime.bus.depths(["routing"])  # type: ignore[attr-defined]
            if depth[0].active == 0:
                break
        await asyncio.sleep(0.05)
    finally:
        stop.set()
        thread_stop.set()
        handled += await asyncio.gather(*tasks)
        for thread in threads:
            await asyncio.to_thread(thread.join, 30)
    assert len(handled) == WORKERS
    assert sum(handled) >= 2 * CONVERSATIONS
    assert all(n > 0 for n in handled), f"some worker handled nothing: {handled}"

    agents = {a["id"]: a for a in await all_items(runtime, "agents")}
    conversations = {c["id"]: c for c in await all_items(runtime, "conversations")}
    holders: dict[str, list[str]] = {}
    for agent_id, doc in agents.items():
        assert doc["used"] == sum(doc["conversations"].values()), agent_id
        assert doc["used"] <= doc["profile"]["capacity"], f"{agent_id} above capacity"
        for conversation_id in doc["conversations"]:
            holders.setdefault(conversation_id, []).append(agent_id)
    assert all(len(h) == 1 for h in holders.values()), "a conversation held by two agents"
    offered = {cid: c["agentId"] for cid, c in conversations.items() if c["status"] == "offered"}
    assert offered, "nothing was assigned"
    for conversation_id, agent_id in offered.items():
        assert holders.get(conversation_id) == [agent_id]
    for conversation_id, c in conversations.items():
        if c["status"] == "waiting":
            assert conversation_id not in holders
    always_offline = {f"a-{n}" for n in range(0, AGENTS, 4)} - flipped
    assert always_offline
    for agent_id in always_offline:
        assert agents[agent_id]["used"] == 0, f"offline {agent_id} got work"
        assert not any(c.get("agentId") == agent_id for c in conversations.values())
