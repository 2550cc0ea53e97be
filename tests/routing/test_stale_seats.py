"""Seats are a hint; the agent document decides. Deterministic tests of the two checks that keep
an agent within capacity when the seat routing read is stale: the reservation's `used <
capacity` check on the agent document it reads, and the ETag that makes a reservation fail when
another one landed between its read and its write. (tests/routing/test_concurrency.py races
real workers; these fail on every run if either check is deleted.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.kernel.documents import BatchOperation, Container, DocumentStore, Item
from shared.kernel.stored import load
from shared.routing.documents import AgentDocument
from shared.routing.seats import agent_after
from shared.runtime import Runtime, use_runtime
from tests.routing.support import (
    agent,
    conversation,
    deliver,
    enqueue,
    presence,
    put_agent,
    put_queue,
    put_rules,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def one_full_agent(runtime: Runtime) -> None:
    """Queue `general`, agent a-1 with capacity 1, offered c-1: a-1 is full."""
    await put_queue("general", acceptTimeoutSeconds=600)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=1)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["agentId"] == "a-1"


async def test_a_stale_seat_never_puts_an_agent_over_capacity(runtime: Runtime) -> None:
    await one_full_agent(runtime)
    # The seat says a-1 is free (as it did before c-1): a stale copy, as a lost seat sync leaves.
    routing = runtime.store.container("routing")
    seat = await routing.read("seat:a-1", "general")
    stale = {k: v for k, v in seat.items() if not k.startswith("_")}
    stale.update(used=0, sortKey=seat.get("sortKey") or "s|999|0000-00-00T00:00:00.000Z|a-1")
    await routing.replace(stale, etag=seat["_etag"])

    await enqueue(runtime, "c-2")
    await deliver(runtime)

    state = await agent(runtime, "a-1")
    assert state["used"] <= state["profile"]["capacity"]
    assert sorted(state["conversations"]) == ["c-1"]
    assert (await conversation(runtime, "c-2"))["status"] == "waiting"


class _Interfering:
    """The `agents` container, with another worker's reservation landing between a reservation's
    read of a-1 and its write (once)."""

    def __init__(self, inner: Container, store: DocumentStore) -> None:
        self._inner = inner
        self.spec = inner.spec
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _interfere(self, item: Item) -> None:
        if not self._done and item["id"] == "a-1" and "c-2" in item.get("conversations", {}):
            self._done = True
            current = load(AgentDocument, await self._inner.read("a-1", "a-1"))
            held = {**current.conversations, "c-other": 1}
            await self._inner.replace(agent_after(current, NOW, held=held).body(), etag=current.etag)

    async def replace(self, item: Item, *, etag: str | None = None) -> Item:
        await self._interfere(item)
        return await self._inner.replace(item, etag=etag)

    async def batch(self, partition_key: str, operations: Sequence[BatchOperation]) -> list[Item | None]:
        # An agent's change is written with its event, in one batch: the first operation is it.
        if operations and operations[0].item is not None:
            await self._interfere(operations[0].item)
        return await self._inner.batch(partition_key, operations)


class _Store:
    def __init__(self, inner: DocumentStore) -> None:
        self._inner = inner
        self._agents = _Interfering(inner.container("agents"), inner)

    def container(self, name: str) -> Any:
        return self._agents if name == "agents" else self._inner.container(name)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()


async def test_a_reservation_that_lost_its_agents_etag_reads_again_and_never_overwrites(
    runtime: Runtime,
) -> None:
    await put_queue("general", acceptTimeoutSeconds=600)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=1)
    await presence("a-1", "available")
    await deliver(runtime)
    racing = dataclasses.replace(runtime, store=_Store(runtime.store))
    with use_runtime(racing):
        await enqueue(racing, "c-2")
        await deliver(racing)

    state = await agent(runtime, "a-1")
    # The other worker's reservation stands; c-2 found a-1 full on the second read.
    assert sorted(state["conversations"]) == ["c-other"]
    assert state["used"] == 1
    assert (await conversation(runtime, "c-2"))["status"] == "waiting"
