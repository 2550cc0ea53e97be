"""The Realtime port's promises, held by every backend: the embedded hub (through the same SDK
adapter the app uses) and Azure Web PubSub when configured (tests/realtime_support.py). Real
WebSocket clients with the `json.webpubsub.azure.v1` subprotocol."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from shared.kernel.errors import PayloadTooLarge
from shared.kernel.realtime import MAX_PAYLOAD_BYTES, Realtime
from tests.realtime_support import Backend, connect, embedded_backend, refused_status, webpubsub_backend


@pytest.fixture(params=["embedded", "webpubsub"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    factory = embedded_backend if request.param == "embedded" else webpubsub_backend
    async for made in factory():
        yield made


def test_the_adapter_implements_the_port() -> None:
    from shared.adapters.webpubsub_realtime import WebPubSubRealtime

    assert isinstance(WebPubSubRealtime("http://127.0.0.1:1", "psc", access_key="k" * 40), Realtime)


async def test_a_client_receives_its_groups_messages_and_never_another_groups(backend: Backend) -> None:
    mine, other = backend.group("conv.c1.patient"), backend.group("conv.c1.staff")
    client = await connect(await backend.realtime.client_url("p-1", [mine]))
    try:
        await backend.realtime.send_to_group(other, {"kind": "note", "text": "internal"})
        await backend.realtime.send_to_group(mine, {"kind": "message", "text": "Dzień dobry"})

        frame = await client.next_message()
        assert frame == {
            "type": "message",
            "from": "group",
            "group": mine,
            "dataType": "json",
            "data": {"kind": "message", "text": "Dzień dobry"},
        }
        await client.assert_no_message()
    finally:
        await client.close()


async def test_the_connected_frame_names_the_user_and_the_connection(backend: Backend) -> None:
    client = await connect(await backend.realtime.client_url("agent-7", [backend.group("agent.agent-7")]))
    try:
        assert client.connected["userId"] == "agent-7"
        assert client.connected["connectionId"]
    finally:
        await client.close()


async def test_a_tampered_token_is_refused_with_401(backend: Backend) -> None:
    url = await backend.realtime.client_url("p-1", [backend.group("a")])
    base, _, token = url.partition("access_token=")
    header, payload, signature = token.split(".")
    forged_claims = json.dumps({"sub": "p-1", "webpubsub.group": [backend.group("b")], "exp": 4102444800})
    import base64

    forged = base64.urlsafe_b64encode(forged_claims.encode()).rstrip(b"=").decode()
    assert await refused_status(f"{base}access_token={header}.{forged}.{signature}") == 401
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert await refused_status(f"{base}access_token={header}.{payload}.{flipped}") == 401


async def test_a_missing_token_is_refused_with_401(backend: Backend) -> None:
    assert await refused_status(backend.client_base()) == 401


async def test_a_token_for_another_hub_is_refused_with_401(backend: Backend) -> None:
    elsewhere = backend.other_hub("otherhub")
    url = await elsewhere.client_url("p-1", [backend.group("a")])
    assert (
        await refused_status(url.replace("/client/hubs/otherhub", f"/client/hubs/{backend.realtime.hub}"))
        == 401
    )


async def test_an_expired_token_is_refused_with_401(backend: Backend) -> None:
    url = backend.forge({"sub": "p-1", "webpubsub.group": [backend.group("a")], "exp": int(time.time()) - 5})
    assert await refused_status(url) == 401


async def test_a_client_cannot_join_another_group(backend: Backend) -> None:
    mine, theirs = backend.group("conv.c1.patient"), backend.group("conv.c1.staff")
    client = await connect(await backend.realtime.client_url("p-1", [mine]))
    try:
        ack = await client.request({"type": "joinGroup", "group": theirs, "ackId": 1})
        assert ack["success"] is False
        assert ack["error"]["name"] == "Forbidden"

        await backend.realtime.send_to_group(theirs, {"kind": "note"})
        await client.assert_no_message()
        left = await client.request({"type": "leaveGroup", "group": mine, "ackId": 2})
        assert left["error"]["name"] == "Forbidden"
    finally:
        await client.close()


async def test_a_client_cannot_send_even_to_its_own_group(backend: Backend) -> None:
    group = backend.group("conv.c2.patient")
    sender = await connect(await backend.realtime.client_url("p-1", [group]))
    listener = await connect(await backend.realtime.client_url("agent-1", [group]))
    try:
        ack = await sender.request({"type": "sendToGroup", "group": group, "ackId": 7, "data": {"x": 1}})
        assert ack["success"] is False
        assert ack["error"]["name"] == "Forbidden"
        await listener.assert_no_message()
    finally:
        await sender.close()
        await listener.close()


async def test_removing_a_user_from_a_group_stops_delivery_at_once(backend: Backend) -> None:
    conversation, own = backend.group("conv.c3.staff"), backend.group("agent.agent-1")
    first_tab = await connect(await backend.realtime.client_url("agent-1", [conversation, own]))
    second_tab = await connect(await backend.realtime.client_url("agent-1", [conversation, own]))
    colleague = await connect(await backend.realtime.client_url("agent-2", [conversation]))
    try:
        await backend.realtime.remove_user_from_group(conversation, "agent-1")
        await backend.realtime.send_to_group(conversation, {"kind": "message", "n": 1})
        # Still in their own group: a frame there proves the connections are alive and caught up.
        await backend.realtime.send_to_group(own, {"kind": "offer"})

        assert (await colleague.next_message())["data"] == {"kind": "message", "n": 1}
        for tab in (first_tab, second_tab):
            assert (await tab.next_message())["group"] == own
            await tab.assert_no_message()
    finally:
        for client in (first_tab, second_tab, colleague):
            await client.close()


async def test_adding_a_user_to_a_group_puts_their_open_connections_in_it(backend: Backend) -> None:
    conversation, own = backend.group("conv.c4.staff"), backend.group("agent.agent-3")
    tab = await connect(await backend.realtime.client_url("agent-3", [own]))
    other = await connect(await backend.realtime.client_url("agent-4", [backend.group("agent.agent-4")]))
    try:
        await backend.realtime.add_user_to_group(conversation, "agent-3")
        await backend.realtime.send_to_group(conversation, {"kind": "message", "n": 2})

        frame = await tab.next_message()
        assert (frame["group"], frame["data"]) == (conversation, {"kind": "message", "n": 2})
        await other.assert_no_message()
    finally:
        await tab.close()
        await other.close()


async def test_removing_a_user_who_is_not_there_is_no_error(backend: Backend) -> None:
    await backend.realtime.remove_user_from_group(backend.group("conv.c9.staff"), "nobody")


async def test_a_groups_frames_arrive_in_the_order_sent(backend: Backend) -> None:
    group = backend.group("supervisors")
    client = await connect(await backend.realtime.client_url("sup-1", [group]))
    try:
        for n in range(30):
            await backend.realtime.send_to_group(group, {"n": n})
        got = [(await client.next_message())["data"]["n"] for _ in range(30)]
        assert got == list(range(30))
    finally:
        await client.close()


async def test_an_oversized_payload_is_refused_and_nothing_is_sent(backend: Backend) -> None:
    group = backend.group("conv.c4.patient")
    client = await connect(await backend.realtime.client_url("p-1", [group]))
    try:
        # json.dumps of {"text": "..."} adds 12 characters around the text.
        over = {"text": "x" * (MAX_PAYLOAD_BYTES - 11)}
        with pytest.raises(PayloadTooLarge):
            await backend.realtime.send_to_group(group, over)
        # Non-ASCII text counts as the SDK sends it (\\u escapes), not as UTF-8.
        with pytest.raises(PayloadTooLarge):
            await backend.realtime.send_to_group(group, {"text": "ą" * (MAX_PAYLOAD_BYTES // 6 + 1)})
        await client.assert_no_message()

        at_limit = {"text": "x" * (MAX_PAYLOAD_BYTES - 12)}
        await backend.realtime.send_to_group(group, at_limit)
        assert (await client.next_message())["data"] == at_limit
    finally:
        await client.close()


@pytest.mark.parametrize("group", ["", "conv 1", "conv/1", "-conv", "conv?x", "żółw", "x" * 1025])
async def test_a_bad_group_name_is_refused_before_anything_is_sent(backend: Backend, group: str) -> None:
    with pytest.raises(ValueError, match="group name"):
        await backend.realtime.send_to_group(group, {"x": 1})
    with pytest.raises(ValueError, match="group name"):
        await backend.realtime.client_url("p-1", [group])
    with pytest.raises(ValueError, match="group name"):
        await backend.realtime.remove_user_from_group(group, "p-1")


@pytest.mark.parametrize("user", ["", "anna kowalska", "anna@example.org\n", "x" * 101])
async def test_a_bad_user_id_is_refused(backend: Backend, user: str) -> None:
    with pytest.raises(ValueError, match="user id"):
        await backend.realtime.client_url(user, [backend.group("a")])


@pytest.mark.parametrize("payload", [{"x": float("nan")}, {"when": object()}, ["not", "an", "object"]])
async def test_a_payload_that_is_not_a_json_object_is_refused(backend: Backend, payload: object) -> None:
    with pytest.raises(ValueError, match="payload"):
        await backend.realtime.send_to_group(backend.group("a"), payload)  # type: ignore[arg-type]


@pytest.mark.parametrize("minutes", [0, 61, -1])
async def test_a_client_url_lives_one_to_sixty_minutes(backend: Backend, minutes: int) -> None:
    with pytest.raises(ValueError, match="minutes"):
        await backend.realtime.client_url("p-1", [backend.group("a")], minutes=minutes)


async def test_a_client_without_the_subprotocol_receives_the_bare_json(backend: Backend) -> None:
    group = backend.group("conv.c5.patient")
    client = await connect(await backend.realtime.client_url("p-1", [group]), subprotocol=False)
    try:
        await asyncio.sleep(0.2)  # no connected frame for a simple client: give the join a moment
        await backend.realtime.send_to_group(group, {"kind": "status", "status": "assigned"})
        assert await client.next() == {"kind": "status", "status": "assigned"}
    finally:
        await client.close()


async def test_ping_reaches_the_service(backend: Backend) -> None:
    await backend.realtime.ping()
