"""Real WebSocket clients (the `websockets` library, subprotocol `json.webpubsub.azure.v1`) and the
real-time backends the contract suite runs against.

- embedded: the dev host's hub, started in the test's event loop on a free port, through the same
  SDK adapter the app uses, with an access key.
- webpubsub: Azure Web PubSub when `PSC_TEST_WEBPUBSUB_CONNECTION_STRING` (Endpoint=…;AccessKey=…;,
  a resource with local auth on) or `PSC_TEST_WEBPUBSUB_ENDPOINT` (keyless: DefaultAzureCredential,
  which needs Web PubSub Service Owner) is set; hub `PSC_TEST_WEBPUBSUB_HUB` (default
  `psccontract`). Otherwise it skips with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from devhost.realtime_server import EmbeddedHub
from shared.adapters.webpubsub_realtime import WebPubSubRealtime
from shared.kernel.realtime import SUBPROTOCOL

HUB_KEY = "test-realtime-key-0123456789abcdef-0123456789"
WEBPUBSUB_SKIP = (
    "Azure Web PubSub contract run skipped: set PSC_TEST_WEBPUBSUB_CONNECTION_STRING"
    " (Endpoint=https://<name>.webpubsub.azure.com;AccessKey=…;) or PSC_TEST_WEBPUBSUB_ENDPOINT"
    " (keyless, with the role Web PubSub Service Owner)"
)
# Time to wait for a frame that must come, and to be sure one that must not come does not.
ARRIVAL = 10.0
SILENCE = 0.5


@dataclass
class Backend:
    name: str
    realtime: WebPubSubRealtime
    # The access key, when the test can sign tokens of its own (expired, with roles).
    key: str | None
    # Makes an adapter for another hub of the same service (a token for the wrong hub).
    other_hub: Callable[[str], WebPubSubRealtime]
    prefix: str

    def group(self, name: str) -> str:
        """A group name of this test run, so runs sharing one service never hear each other."""
        return f"{self.prefix}.{name}"

    def forge(self, claims: dict[str, Any], *, audience: str | None = None) -> str:
        """A client URL whose token carries `claims`, signed with the key."""
        if self.key is None:
            pytest.skip(f"{self.name}: forging a token needs the access key")
        base = self.client_base()
        payload = {"aud": audience or base.replace("ws", "http", 1), "exp": int(time.time()) + 300, **claims}
        return f"{base}?access_token={jwt.encode(payload, self.key, algorithm='HS256')}"

    def client_base(self) -> str:
        endpoint = self.realtime.endpoint.lower()
        return "ws" + endpoint[4:] + f"/client/hubs/{self.realtime.hub}"


class Client:
    """One WebSocket client; frames are read in the background into a queue."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.connected: dict[str, Any] = {}

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                self.frames.put_nowait(json.loads(raw) if isinstance(raw, str) else {"binary": raw})
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result(self.connection.close_code)

    async def next(self, timeout: float = ARRIVAL) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def next_message(self, timeout: float = ARRIVAL) -> dict[str, Any]:
        """The next group message, skipping acks and system frames."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - asyncio.get_running_loop().time()))
            if frame.get("type") == "message":
                return frame

    async def assert_no_message(self, wait: float = SILENCE) -> None:
        await asyncio.sleep(wait)
        while not self.frames.empty():
            frame = self.frames.get_nowait()
            assert frame.get("type") != "message", f"unexpected frame {frame}"

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a subprotocol request with an ackId and return its ack; other frames that arrive
        meanwhile stay queued, in order, for `next`."""
        await self.connection.send(json.dumps(frame))
        passed: list[dict[str, Any]] = []
        try:
            while True:
                answer = await self.next()
                if answer.get("type") == "ack" and answer.get("ackId") == frame.get("ackId"):
                    return answer
                passed.append(answer)
        finally:
            rest = [self.frames.get_nowait() for _ in range(self.frames.qsize())]
            for kept in [*passed, *rest]:
                self.frames.put_nowait(kept)

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()


async def connect(url: str, *, subprotocol: bool = True) -> Client:
    """Connect and wait for the `connected` system frame (subprotocol clients)."""
    connection = await websockets.connect(url, subprotocols=[SUBPROTOCOL] if subprotocol else None)  # type: ignore[list-item]
    client = Client(connection)
    if subprotocol:
        connected = await client.next()
        assert connected["type"] == "system", connected
        assert connected["event"] == "connected", connected
        client.connected = connected
    return client


async def refused_status(url: str) -> int:
    """The HTTP status the upgrade was refused with (fails if it was accepted)."""
    try:
        async with websockets.connect(url, subprotocols=[SUBPROTOCOL]):  # type: ignore[list-item]
            pass
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    raise AssertionError("the connection was accepted")


def _parse_connection_string(text: str) -> tuple[str, str]:
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    lowered = {k.lower(): v for k, v in parts.items()}
    return lowered["endpoint"], lowered["accesskey"]


async def embedded_backend() -> AsyncIterator[Backend]:
    async with EmbeddedHub(HUB_KEY, port=0) as hub:
        made: list[WebPubSubRealtime] = []

        def adapter(name: str) -> WebPubSubRealtime:
            made.append(WebPubSubRealtime(hub.endpoint, name, access_key=HUB_KEY))
            return made[-1]

        yield Backend("embedded", adapter("psc"), HUB_KEY, adapter, f"t{uuid.uuid4().hex[:8]}")
        for realtime in made:
            await realtime.close()


async def webpubsub_backend() -> AsyncIterator[Backend]:
    hub = os.environ.get("PSC_TEST_WEBPUBSUB_HUB", "psccontract")
    connection_string = os.environ.get("PSC_TEST_WEBPUBSUB_CONNECTION_STRING")
    endpoint = os.environ.get("PSC_TEST_WEBPUBSUB_ENDPOINT")
    made: list[WebPubSubRealtime] = []
    key: str | None = None
    if connection_string:
        endpoint, key = _parse_connection_string(connection_string)
    elif not endpoint:
        pytest.skip(WEBPUBSUB_SKIP)

    def adapter(name: str) -> WebPubSubRealtime:
        assert endpoint is not None
        if key is not None:
            made.append(WebPubSubRealtime(endpoint, name, access_key=key))
        else:
            from azure.identity.aio import DefaultAzureCredential

            made.append(WebPubSubRealtime(endpoint, name, credential=DefaultAzureCredential))
        return made[-1]

    yield Backend("webpubsub", adapter(hub), key, adapter, f"t{uuid.uuid4().hex[:8]}")
    for realtime in made:
        await realtime.close()
