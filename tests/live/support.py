"""Real time in tests: the embedded hub on a free port behind the runtime's realtime adapter, a
relay of the outbox's event documents onto the embedded `events` topic (the relay's shape:
`event_message`, duplicate detection drops what was sent before), and the `realtime` function run
over its subscription's sessions as the host runs it (complete on success, abandon on failure)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import jwt

from devhost.realtime_server import EmbeddedHub
from shared.adapters.webpubsub_realtime import WebPubSubRealtime
from shared.kernel.catalog import AGENTS, CONVERSATIONS
from shared.kernel.documents import Query, where
from shared.kernel.outbox import event_message
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, registered_functions
from tests.realtime_support import HUB_KEY, Client, connect

SUBSCRIPTION = "events/subscriptions/realtime"


async def hub_for(runtime: Runtime) -> AsyncIterator[EmbeddedHub]:
    async with EmbeddedHub(HUB_KEY, port=0) as hub:
        runtime.realtime_adapter = WebPubSubRealtime(hub.endpoint, "psc", access_key=HUB_KEY)
        yield hub
        await runtime.realtime_adapter.close()
        runtime.realtime_adapter = None


async def event_items(runtime: Runtime) -> list[dict[str, Any]]:
    """Every outbox event document, in write order per aggregate."""
    items: list[dict[str, Any]] = []
    for container in (CONVERSATIONS, AGENTS):
        page = await runtime.store.container(container).query_cross_partition(
            Query((where("type", "=", "event"),)), max_items=10_000
        )
        items += page.items
    return sorted(items, key=lambda e: (e["at"], e["aggregateId"], e["version"], e["n"]))


def envelopes(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        message = event_message(item)
        assert message is not None
        out.append(json.loads(message.body))
    return out


async def relay(runtime: Runtime) -> None:
    """Publish every event document to the topic, as the relay does (a copy is dropped)."""
    for item in await event_items(runtime):
        message = event_message(item)
        assert message is not None
        await runtime.bus.send("events", message)


async def drain(runtime: Runtime) -> int:
    """Run `realtime_push` over every session of the subscription until it is empty."""
    from devhost.queues import to_functions_message

    push = registered_functions()["realtime_push"].get_user_function()
    bus: Any = runtime.bus
    handled = 0
    while (session := await bus.accept_next_session(SUBSCRIPTION)) is not None:
        try:
            while messages := await bus.receive_from_session(session, max_messages=10):
                for message in messages:
                    try:
                        await push(to_functions_message(message))
                    except Exception:
                        await bus.abandon(SUBSCRIPTION, message.lock_token)
                        raise
                    await bus.complete(SUBSCRIPTION, message.lock_token)
                    handled += 1
        finally:
            await bus.release_session(session)
    return handled


async def publish(runtime: Runtime) -> int:
    await relay(runtime)
    return await drain(runtime)


def groups_of(url: str) -> list[str]:
    token = url.partition("access_token=")[2]
    return list(jwt.decode(token, options={"verify_signature": False})["webpubsub.group"])


async def negotiated(name: str, bearer: str, **route: str) -> Answer:
    return await invoke(name, bearer=bearer, route_params=route)


async def connect_as(name: str, bearer: str, **route: str) -> Client:
    answer = await negotiated(name, bearer, **route)
    assert answer.status == 200, answer.json
    return await connect(answer.json["url"])


async def messages(client: Client, settle: float = 0.3) -> list[dict[str, Any]]:
    """The data of every group message that arrived so far (after `settle` seconds of quiet)."""
    import asyncio

    await asyncio.sleep(settle)
    out = []
    while not client.frames.empty():
        frame = client.frames.get_nowait()
        if frame.get("type") == "message":
            out.append(frame["data"])
    return out
