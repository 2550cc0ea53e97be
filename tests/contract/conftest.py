"""Backends for the port contract suites. Each suite runs once per backend listed here.

A backend that cannot run on this machine skips with the reason printed (pytest -ra shows it).
Adding an adapter to a contract suite is one entry in STORE_BACKENDS / BUS_BACKENDS plus its factory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from shared.ports.clock import Clock, ManualClock
from shared.ports.documents import ContainerSpec, DocumentStore
from shared.ports.messages import MessageBus, QueueSpec

# Containers and queues the contract suites use (independent of the product catalogue).
CONTRACT_CONTAINERS = {
    spec.name: spec
    for spec in (
        ContainerSpec("things", "/tenant"),
        ContainerSpec("expiring", "/tenant", default_ttl=-1),
        ContainerSpec("short_lived", "/tenant", default_ttl=2),
        ContainerSpec("nested", "/owner/id"),
    )
}
CONTRACT_QUEUES = {
    spec.name: spec
    for spec in (
        # 20 s is Service Bus's shortest duplicate-detection window: the "accepted again after the
        # window" test then waits 20 s on a real namespace, not 10 minutes.
        QueueSpec(
            "work",
            "WORK_QUEUE",
            max_delivery_count=3,
            lock_duration=timedelta(seconds=30),
            duplicate_detection_window=timedelta(seconds=20),
        ),
        QueueSpec("other", "OTHER_QUEUE"),
    )
}


@dataclass
class StoreHarness:
    store: DocumentStore
    clock: Clock
    # Moves time forward for TTL checks: the manual clock for embedded, a real sleep for Cosmos.
    advance: Callable[[float], Awaitable[None]]
    name: str


@dataclass
class BusHarness:
    bus: MessageBus
    clock: Clock
    advance: Callable[[float], Awaitable[None]]
    name: str


StoreFactory = Callable[[Path], AsyncIterator[StoreHarness]]
BusFactory = Callable[[Path], AsyncIterator[BusHarness]]


async def _embedded_store(tmp_path: Path) -> AsyncIterator[StoreHarness]:
    from shared.adapters.sqlite_documents import SqliteDocumentStore

    clock = ManualClock()
    store = SqliteDocumentStore(tmp_path / "store.sqlite3", CONTRACT_CONTAINERS, clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    try:
        yield StoreHarness(store, clock, advance, "embedded")
    finally:
        await store.close()


async def _cosmos_store(tmp_path: Path) -> AsyncIterator[StoreHarness]:
    pytest.skip("Cosmos DB adapter lands with issue 3")
    yield  # pragma: no cover


async def _embedded_bus(tmp_path: Path) -> AsyncIterator[BusHarness]:
    from shared.adapters.sqlite_bus import SqliteMessageBus

    clock = ManualClock()
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", CONTRACT_QUEUES, clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    try:
        yield BusHarness(bus, clock, advance, "embedded")
    finally:
        await bus.close()


async def _servicebus_bus(tmp_path: Path) -> AsyncIterator[BusHarness]:
    pytest.skip("Service Bus adapter lands with issue 3")
    yield  # pragma: no cover


STORE_BACKENDS: dict[str, StoreFactory] = {"embedded": _embedded_store, "cosmos": _cosmos_store}
BUS_BACKENDS: dict[str, BusFactory] = {"embedded": _embedded_bus, "servicebus": _servicebus_bus}


@pytest.fixture(params=list(STORE_BACKENDS))
async def store_harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreHarness]:
    async for harness in STORE_BACKENDS[request.param](tmp_path):
        yield harness


@pytest.fixture(params=list(BUS_BACKENDS))
async def bus_harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusHarness]:
    async for harness in BUS_BACKENDS[request.param](tmp_path):
        yield harness
