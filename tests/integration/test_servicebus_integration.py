"""The Service Bus adapter against a real namespace or the emulator: what the contract suite does not
cover. Needs PSC_TEST_SERVICEBUS_CONNECTION and the queues `work` and `other`; skips otherwise."""

from __future__ import annotations

import pytest

from shared.adapters.servicebus_bus import ServiceBusMessageBus
from tests.contract.conftest import CONTRACT_QUEUES
from tests.integration.endpoints import servicebus_connection

pytestmark = pytest.mark.integration


async def test_ping_and_depths_answer() -> None:
    bus = ServiceBusMessageBus(None, CONTRACT_QUEUES, connection_string=servicebus_connection())
    try:
        await bus.ping()
        depths = await bus.depths(list(CONTRACT_QUEUES))
        assert [d.queue for d in depths] == list(CONTRACT_QUEUES)
    finally:
        await bus.close()


async def test_cancelling_an_unknown_sequence_number_is_a_no_op() -> None:
    bus = ServiceBusMessageBus(None, CONTRACT_QUEUES, connection_string=servicebus_connection())
    try:
        await bus.cancel_scheduled("work", 987_654_321)
    finally:
        await bus.close()
