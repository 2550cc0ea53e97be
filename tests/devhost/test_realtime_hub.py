"""The embedded hub as the service it stands in for: its REST API refuses what Web PubSub refuses,
permissions granted by roles work (so refusals are the roles' doing, not a hub that can do
nothing), and a client that breaks the subprotocol is declined."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
import websockets

from devhost.errors import StartError
from devhost.realtime_server import EmbeddedHub
from shared.adapters.webpubsub_realtime import WebPubSubRealtime
from shared.kernel.errors import PayloadTooLarge, Unavailable
from shared.kernel.realtime import MAX_PAYLOAD_BYTES, SUBPROTOCOL
from tests.realtime_support import HUB_KEY, Backend, connect, embedded_backend, refused_status


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async for made in embedded_backend():
        yield made


def rest_token(url: str, key: str = HUB_KEY, **claims: object) -> str:
    return jwt.encode({"aud": url, "exp": int(time.time()) + 60, **claims}, key, algorithm="HS256")


async def test_rest_calls_need_a_token_for_exactly_that_url(backend: Backend) -> None:
    url = f"{backend.realtime.endpoint}/api/hubs/psc/groups/g/:send?api-version=2024-12-01"
    async with httpx.AsyncClient() as http:
        headers = {"content-type": "application/json"}
        for authorization in (
            None,
            f"Bearer {rest_token(url, key='another-key-0123456789abcdef-0123456789')}",
            f"Bearer {rest_token(url.replace('/g/', '/h/'))}",  # signed for another group
            f"Bearer {rest_token(url, exp=int(time.time()) - 1)}",
        ):
            auth = {"authorization": authorization} if authorization else {}
            answer = await http.post(url, content=b"{}", headers={**headers, **auth})
            assert answer.status_code == 401
        answer = await http.post(
            url, content=b"{}", headers={**headers, "authorization": f"Bearer {rest_token(url)}"}
        )
        assert answer.status_code == 202
        bare = url.split("?")[0]
        answer = await http.post(
            bare, content=b"{}", headers={**headers, "authorization": f"Bearer {rest_token(bare)}"}
        )
        assert answer.status_code == 400  # api-version is required


async def test_a_token_that_names_its_own_algorithm_is_refused(backend: Backend) -> None:
    url = f"{backend.realtime.endpoint}/api/hubs/psc/groups/g?api-version=2024-12-01"
    unsigned = jwt.encode({"aud": url, "exp": int(time.time()) + 60}, None, algorithm="none")
    async with httpx.AsyncClient() as http:
        answer = await http.get(url, headers={"authorization": f"Bearer {unsigned}"})
    assert answer.status_code == 401


async def test_an_oversized_body_is_413_which_the_adapter_reports_as_payload_too_large(
    backend: Backend,
) -> None:
    url = f"{backend.realtime.endpoint}/api/hubs/psc/groups/g/:send?api-version=2024-12-01"
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            url,
            content=b'"' + b"x" * MAX_PAYLOAD_BYTES + b'"',
            headers={"content-type": "application/json", "authorization": f"Bearer {rest_token(url)}"},
        )
    assert answer.status_code == 413
    from azure.core.exceptions import HttpResponseError

    from shared.adapters.webpubsub_realtime import _raise_mapped

    error = HttpResponseError(message="too large")
    error.status_code = 413
    with pytest.raises(PayloadTooLarge):
        _raise_mapped(error)


async def test_roles_in_the_token_grant_joining_and_sending_as_on_azure(backend: Backend) -> None:
    room = backend.group("room")
    member = await connect(
        backend.forge(
            {"sub": "u-1", "role": [f"webpubsub.joinLeaveGroup.{room}", f"webpubsub.sendToGroup.{room}"]}
        )
    )
    try:
        joined = await member.request({"type": "joinGroup", "group": room, "ackId": 1})
        assert joined == {"type": "ack", "ackId": 1, "success": True}
        sent = await member.request({"type": "sendToGroup", "group": room, "ackId": 2, "data": {"hi": 1}})
        assert sent["success"] is True
        frame = await member.next_message()
        assert frame["data"] == {"hi": 1}
        assert frame["fromUserId"] == "u-1"
        again = await member.request({"type": "sendToGroup", "group": room, "ackId": 2, "data": {"hi": 1}})
        assert again["error"]["name"] == "Duplicate"
        other = await member.request({"type": "joinGroup", "group": backend.group("elsewhere"), "ackId": 3})
        assert other["error"]["name"] == "Forbidden"
        await member.request({"type": "leaveGroup", "group": room, "ackId": 4})
        await backend.realtime.send_to_group(room, {"after": "leave"})
        await member.assert_no_message()
    finally:
        await member.close()


async def test_a_frame_that_is_not_a_subprotocol_request_declines_the_client(backend: Backend) -> None:
    client = await connect(await backend.realtime.client_url("p-1", [backend.group("a")]))
    await client.connection.send("not json")
    goodbye = await client.next()
    assert goodbye == {"type": "system", "event": "disconnected", "message": "Invalid message."}
    assert await asyncio.wait_for(client.closed, 5) == 1008


async def test_a_client_frame_over_one_mebibyte_closes_the_connection(backend: Backend) -> None:
    client = await connect(await backend.realtime.client_url("p-1", [backend.group("a")]))
    payload = json.dumps({"type": "event", "event": "x", "data": "y" * 1_048_576})
    await client.connection.send(payload)
    assert await asyncio.wait_for(client.closed, 5) == 1009


async def test_other_web_pubsub_subprotocols_are_refused_rather_than_half_emulated(backend: Backend) -> None:
    url = await backend.realtime.client_url("p-1", [backend.group("a")])
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=["json.reliable.webpubsub.azure.v1"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 400
    async with websockets.connect(url, subprotocols=[SUBPROTOCOL, "custom"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == SUBPROTOCOL


async def test_hub_names_are_case_insensitive_as_the_sdk_lowercases_the_endpoint(backend: Backend) -> None:
    group = backend.group("a")
    upper = backend.other_hub("PSC")
    client = await connect(await upper.client_url("p-1", [group]))
    try:
        await backend.realtime.send_to_group(group, {"x": 1})
        assert (await client.next_message())["data"] == {"x": 1}
    finally:
        await client.close()


async def test_a_stopped_hub_is_unavailable_to_the_adapter() -> None:
    hub = EmbeddedHub(HUB_KEY, port=0)
    await hub.start()
    endpoint = hub.endpoint
    await hub.stop()
    realtime = WebPubSubRealtime(endpoint, "psc", access_key=HUB_KEY, client_options={"retry_total": 0})
    try:
        with pytest.raises(Unavailable):
            await realtime.ping()
        with pytest.raises(Unavailable):
            await realtime.send_to_group("supervisors", {"x": 1})
    finally:
        await realtime.close()


async def test_a_busy_port_fails_the_start_naming_the_option() -> None:
    async with EmbeddedHub(HUB_KEY, port=0) as first:
        with pytest.raises(StartError, match="--realtime-port"):
            await EmbeddedHub(HUB_KEY, port=first.port or 0).start()


async def test_the_upgrade_line_with_its_token_never_reaches_the_logs(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    url = await backend.realtime.client_url("p-1", [backend.group("a")])
    client = await connect(url)
    await client.close()
    await refused_status(url.replace("access_token=", "access_token=x"))
    token = url.split("access_token=")[1]
    hub_side = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client")]
    assert not [line for line in hub_side if token in line]
    assert not [line for line in hub_side if "without completing handshake" in line]
