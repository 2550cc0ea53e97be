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

from shared.kernel.clock import Clock, ManualClock
from shared.kernel.documents import ContainerSpec, DocumentStore
from shared.kernel.messages import MessageBus, QueueSpec, SubscriptionSpec, TopicSpec

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
_LOCK = timedelta(seconds=30)
CONTRACT_TOPICS = {
    spec.name: spec
    for spec in (
        TopicSpec(
            "contract-events",
            "CONTRACT_EVENTS_TOPIC",
            duplicate_detection_window=timedelta(seconds=20),
            subscriptions=(
                SubscriptionSpec(
                    "all", "CONTRACT_ALL_SUBSCRIPTION", max_delivery_count=3, lock_duration=_LOCK
                ),
                SubscriptionSpec(
                    "booked",
                    "CONTRACT_BOOKED_SUBSCRIPTION",
                    max_delivery_count=3,
                    lock_duration=_LOCK,
                    subjects=("appointment.booked", "appointment.moved"),
                ),
                SubscriptionSpec(
                    "ordered",
                    "CONTRACT_ORDERED_SUBSCRIPTION",
                    max_delivery_count=3,
                    lock_duration=_LOCK,
                    requires_session=True,
                ),
            ),
        ),
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
    """A real Cosmos DB endpoint (tests/integration/endpoints.py says which, or skips): a fresh
    database per test, dropped afterwards. TTL checks wait real time."""
    import uuid

    from shared.adapters.cosmos_documents import CosmosDocumentStore
    from shared.kernel.clock import SystemClock
    from tests.integration.endpoints import cosmos_endpoint

    endpoint = cosmos_endpoint()
    store = CosmosDocumentStore(
        endpoint.url,
        f"psc-contract-{uuid.uuid4().hex[:12]}",
        CONTRACT_CONTAINERS,
        lambda: endpoint.key,
        emulator=endpoint.emulator,
        provision=True,  # a key-authenticated test endpoint: the containers are created per test
    )
    clock = SystemClock()

    async def advance(seconds: float) -> None:
        await clock.sleep(seconds)

    try:
        await store.ensure_containers()
        yield StoreHarness(store, clock, advance, "cosmos")
    finally:
        try:
            await store.delete_database()
        finally:
            await store.close()


async def _embedded_bus(tmp_path: Path) -> AsyncIterator[BusHarness]:
    from shared.adapters.sqlite_bus import SqliteMessageBus

    clock = ManualClock()
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", CONTRACT_QUEUES, clock, topics=CONTRACT_TOPICS)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    try:
        yield BusHarness(bus, clock, advance, "embedded")
    finally:
        await bus.close()


async def _servicebus_bus(tmp_path: Path) -> AsyncIterator[BusHarness]:
    """A real Service Bus namespace or emulator from PSC_TEST_SERVICEBUS_CONNECTION (else skips).
    The queues of CONTRACT_QUEUES and the topic and subscriptions of CONTRACT_TOPICS must exist there
    with the same settings (the `booked` subscription with one correlation-filter rule per subject on
    the label instead of the default rule; `ordered` with sessions). The bus is its own receiver
    (`ServiceBusMessageBus` implements `QueueReceiver` and `SessionReceiver`); time passes for real."""
    from shared.adapters.servicebus_bus import ServiceBusMessageBus
    from shared.kernel.clock import SystemClock
    from tests.integration.endpoints import servicebus_connection

    bus = ServiceBusMessageBus(
        None, CONTRACT_QUEUES, connection_string=servicebus_connection(), topics=CONTRACT_TOPICS
    )
    clock = SystemClock()

    async def advance(seconds: float) -> None:
        await clock.sleep(seconds)

    try:
        yield BusHarness(bus, clock, advance, "servicebus")
    finally:
        await bus.close()


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
