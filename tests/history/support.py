"""Events as the topic carries them: the envelopes of every outbox event document the real
services wrote (all aggregate containers), and messages of them for the consumers' functions."""

from __future__ import annotations

import json
from typing import Any

from azure.functions.servicebus import ServiceBusMessage

from shared.kernel.outbox import event_message
from shared.runtime import Runtime
from tests.conftest import stored_items

AGGREGATE_CONTAINERS = ("conversations", "appointments", "agents")


async def written_envelopes(runtime: Runtime) -> list[dict[str, Any]]:
    """Every event the outbox wrote, as its envelope, each aggregate's in the order written."""
    envelopes = []
    for container in AGGREGATE_CONTAINERS:
        for item in await stored_items(runtime, container, children=True):
            message = event_message(item)
            if message is not None:
                envelopes.append(json.loads(message.body))
    return sorted(envelopes, key=lambda e: (e["at"], e["aggregateId"], e["version"], e["id"]))


def topic_message(
    envelope: dict[str, Any], *, delivery_count: int = 1, body: bytes | None = None
) -> ServiceBusMessage:
    """The message the relay publishes for `envelope`, as the Functions worker hands it over."""
    return ServiceBusMessage(
        body=json.dumps(envelope, separators=(",", ":")).encode() if body is None else body,
        message_id=envelope["id"],
        session_id=envelope["aggregateId"],
        subject=envelope["type"],
        content_type="application/json",
        application_properties={},
        user_properties={},
        delivery_count=delivery_count,
    )


def envelope(type: str, aggregate_id: str, version: int, at: str, n: int = 1, **data: Any) -> dict[str, Any]:
    return {
        "id": f"{aggregate_id}:{version}.{n}",
        "type": type,
        "aggregateId": aggregate_id,
        "version": version,
        "at": at,
        "data": data,
    }
