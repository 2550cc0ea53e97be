"""Helpers the message-bus contract suites share (queues, topics, sessions)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.kernel.messages import (
    DeadLetterAdmin,
    OutgoingMessage,
    QueueDepth,
    QueueReceiver,
    ReceivedMessage,
    SessionReceiver,
)
from tests.contract.conftest import CONTRACT_QUEUES, BusHarness

WORK = "work"
WORK_SPEC = CONTRACT_QUEUES[WORK]
LOCK_SECONDS = WORK_SPEC.lock_duration.total_seconds()
# Real clocks (a cloud backend) drift a little between our clock and the broker's.
TOLERANCE = timedelta(seconds=5)


def receiver_of(harness: BusHarness) -> QueueReceiver:
    receiver = getattr(harness, "receiver", None) or harness.bus
    if not isinstance(receiver, QueueReceiver):
        pytest.skip(f"the {harness.name} harness offers no queue receiver")
    return receiver


def admin_of(harness: BusHarness) -> DeadLetterAdmin:
    if not isinstance(harness.bus, DeadLetterAdmin):
        pytest.skip(f"the {harness.name} bus offers no dead-letter administration")
    return harness.bus


def message(body: bytes = b'{"n": 1}', **fields: Any) -> OutgoingMessage:
    return OutgoingMessage(body=body, message_id=f"contract-{uuid.uuid4()}", **fields)


async def receive_exactly(receiver: QueueReceiver, count: int, queue: str = WORK) -> list[ReceivedMessage]:
    """Receive until `count` messages arrived; a broker may hand out fewer than asked per call."""
    received: list[ReceivedMessage] = []
    for _ in range(20):
        received += await receiver.receive(queue, max_messages=count - len(received))
        if len(received) >= count:
            return received
    raise AssertionError(f"expected {count} messages, received {len(received)}")


async def receive_one(receiver: QueueReceiver, queue: str = WORK) -> ReceivedMessage:
    (received,) = await receive_exactly(receiver, 1, queue)
    return received


async def depth(admin: DeadLetterAdmin, queue: str = WORK) -> QueueDepth:
    (result,) = await admin.depths([queue])
    return result


def close_to(actual: datetime | None, expected: datetime) -> bool:
    return actual is not None and abs(actual - expected) <= TOLERANCE


def sessions_of(harness: BusHarness) -> SessionReceiver:
    receiver = getattr(harness, "receiver", None) or harness.bus
    if not isinstance(receiver, SessionReceiver):
        pytest.skip(f"the {harness.name} harness offers no session receiver")
    return receiver
