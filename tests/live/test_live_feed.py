"""The `realtime` consumer end to end on the embedded hub: functions write, the outbox's events go
through the embedded `events` topic to `realtime_push`, and real WebSocket clients that negotiated
through the API receive the frames (or do not)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from devhost.realtime_server import EmbeddedHub
from shared.kernel.clock import ManualClock
from shared.live.api import LiveFeed
from shared.runtime import Runtime
from tests.conftest import invoke
from tests.functions.test_messages import A1, NOTE, active, escalate, patient, read, seed, staff_write
from tests.live.support import connect_as, envelopes, event_items, hub_for, messages, publish
from tests.routing.support import SUPERVISOR, agent_token, deliver, presence, put_agent


@pytest.fixture
async def hub(runtime: Runtime) -> AsyncIterator[EmbeddedHub]:
    async for running in hub_for(runtime):
        yield running


def kinds(frames: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(f["kind"], f.get("status") or f.get("reason") or f.get("position")) for f in frames]


async def test_the_patient_hears_the_agents_message_and_never_an_internal_note(
    runtime: Runtime, hub: EmbeddedHub, caplog: pytest.LogCaptureFixture
) -> None:
    cid = await active(runtime)
    await publish(runtime)
    patient_client = await connect_as("negotiate_patient", patient(), conversationId=cid)
    agent_client = await connect_as("negotiate_agent", A1)
    try:
        assert (await staff_write(cid, text="Hello, I am a nurse.")).status == 201
        assert (await staff_write(cid, text=NOTE, visibility="internal")).status == 201
        assert await publish(runtime) == 2

        seen = await messages(patient_client)
        assert [(f["kind"], f["message"]["seq"], f["message"]["text"]) for f in seen] == [
            ("message", 3, "Hello, I am a nurse.")
        ]
        assert seen[0]["conversationId"] == cid
        assert seen[0]["message"]["from"] == {"role": "agent", "id": "a-1", "name": "a-1"}
        staff = await messages(agent_client)
        assert [(f["message"]["seq"], f["message"]["visibility"]) for f in staff] == [
            (3, "patient"),
            (4, "internal"),
        ]
        assert NOTE not in json.dumps(seen)
        # The texts went to the hub only, never to a log line.
        logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
        assert "live frames pushed" in logged
        assert "nurse" not in logged
        assert NOTE not in logged
    finally:
        await patient_client.close()
        await agent_client.close()


async def test_redelivery_of_every_event_pushes_nothing(runtime: Runtime, hub: EmbeddedHub) -> None:
    cid = await active(runtime)
    assert (await staff_write(cid, text="Hello")).status == 201
    await publish(runtime)
    patient_client = await connect_as("negotiate_patient", patient(), conversationId=cid)
    agent_client = await connect_as("negotiate_agent", A1)
    supervisor_client = await connect_as("negotiate_supervisor", SUPERVISOR)
    try:
        feed = LiveFeed(runtime.store, runtime.realtime)
        again = [await feed.handle(envelope) for envelope in envelopes(await event_items(runtime))]

        assert again
        assert set(again) == {0}
        for client in (patient_client, agent_client, supervisor_client):
            assert await messages(client) == []
    finally:
        for client in (patient_client, agent_client, supervisor_client):
            await client.close()


async def test_status_offers_and_the_board_reach_their_groups(runtime: Runtime, hub: EmbeddedHub) -> None:
    await seed(runtime)
    agent_client = await connect_as("negotiate_agent", A1)
    supervisor_client = await connect_as("negotiate_supervisor", SUPERVISOR)
    try:
        cid = str((await escalate()).json["conversationId"])
        patient_client = await connect_as("negotiate_patient", patient(), conversationId=cid)
        await deliver(runtime)
        await publish(runtime)

        offer = [f for f in await messages(agent_client) if f["kind"] == "offer"]
        assert [(f["conversationId"], f["queueId"]) for f in offer] == [(cid, "general")]
        assert set(offer[0]) == {"kind", "event", "conversationId", "queueId", "offerSeq", "expiresAt"}
        board = await messages(supervisor_client)
        agents = [f for f in board if f["kind"] == "agent"]
        # The dashboard's agent tile frame (docs/ARCHITECTURE.md "Dashboard"), nothing more.
        assert agents
        assert set(agents[-1]) == {"kind", "agentId", "presence", "load", "capacity", "asOf"}
        assert ("conversation", "offered") in kinds(board)
        assert [k for k in kinds(await messages(patient_client)) if k[0] == "status"] == [
            ("status", "waiting"),
            ("status", "offered"),
        ]

        accepted = await invoke(
            "accept_conversation", method="POST", bearer=A1, route_params={"conversationId": cid}
        )
        assert accepted.status == 200
        await publish(runtime)
        assert ("assigned", None) in kinds(await messages(agent_client))
        assert ("status", "active") in kinds(await messages(patient_client))
        await patient_client.close()
    finally:
        await agent_client.close()
        await supervisor_client.close()


async def test_a_patient_learns_their_place_in_the_queue(
    runtime: Runtime, hub: EmbeddedHub, clock: ManualClock
) -> None:
    await seed(runtime)
    await presence("a-1", "offline")
    first = str((await escalate()).json["conversationId"])
    clock.advance(5)
    second = str((await escalate({**_escalation("chat/43", "p-2")})).json["conversationId"])
    await deliver(runtime)
    client = await connect_as("negotiate_patient", patient("p-2"), conversationId=second)
    try:
        await publish(runtime)
        places = [f for f in await messages(client) if f["kind"] == "position"]
        assert places
        assert all(f["conversationId"] == second for f in places)
        assert places[-1]["position"] == 2
        assert first != second
    finally:
        await client.close()


async def test_transfer_and_close_take_the_agent_out_of_the_conversation(
    runtime: Runtime, hub: EmbeddedHub
) -> None:
    cid = await active(runtime)
    await put_agent("a-2", queues=["general"], capacity=3)
    await publish(runtime)
    agent_client = await connect_as("negotiate_agent", A1)
    try:
        moved = await invoke(
            "transfer_conversation",
            method="POST",
            bearer=A1,
            route_params={"conversationId": cid},
            json_body={"queueId": "general"},
        )
        assert moved.status == 200, moved.json
        await publish(runtime)
        assert ("removed", "transferred") in kinds(await messages(agent_client))

        # a-1 has left the staff group: the conversation's next status frames do not reach them.
        closed = await invoke(
            "supervisor_force_close",
            method="POST",
            bearer=SUPERVISOR,
            route_params={"conversationId": cid},
            json_body={},
        )
        assert closed.status == 200, closed.json
        await publish(runtime)
        assert not [f for f in await messages(agent_client) if f["kind"] in ("message", "status")]
    finally:
        await agent_client.close()


async def test_a_client_that_missed_frames_catches_up_through_rest(
    runtime: Runtime, hub: EmbeddedHub, clock: ManualClock
) -> None:
    cid = await active(runtime)
    await publish(runtime)
    client = await connect_as("negotiate_patient", patient(), conversationId=cid)
    assert (await staff_write(cid, text="one")).status == 201
    await publish(runtime)
    (seen,) = [f["message"]["seq"] for f in await messages(client) if f["kind"] == "message"]
    await client.close()

    # Away: these frames are lost for it (the hub keeps nothing).
    for text in ("two", "three"):
        assert (await staff_write(cid, text=text)).status == 201
    assert (await staff_write(cid, text=NOTE, visibility="internal")).status == 201
    await publish(runtime)

    client = await connect_as("negotiate_patient", patient(), conversationId=cid)
    try:
        missed = await read("my_messages", cid, patient(), after=seen)
        assert [m["text"] for m in missed.json["items"]] == ["two", "three"]
        assert (await staff_write(cid, text="four")).status == 201
        await publish(runtime)
        assert [f["message"]["text"] for f in await messages(client) if f["kind"] == "message"] == ["four"]
    finally:
        await client.close()


def _escalation(bot_id: str, patient_id: str) -> dict[str, object]:
    from tests.functions.test_messages import ESCALATION

    return {**ESCALATION, "botConversationId": bot_id, "patient": {"id": patient_id}}


async def test_an_agent_who_accepts_hears_the_conversation_on_the_connection_they_have(
    runtime: Runtime, hub: EmbeddedHub
) -> None:
    await seed(runtime)
    agent_client = await connect_as("negotiate_agent", agent_token("a-1"))
    try:
        cid = str((await escalate()).json["conversationId"])
        await deliver(runtime)
        accepted = await invoke(
            "accept_conversation", method="POST", bearer=A1, route_params={"conversationId": cid}
        )
        assert accepted.status == 200
        await publish(runtime)
        await messages(agent_client)
        assert (
            await invoke(
                "send_my_message",
                method="POST",
                bearer=patient(),
                route_params={"conversationId": cid},
                json_body={"text": "Still there?"},
            )
        ).status == 201
        await publish(runtime)
        assert [f["message"]["text"] for f in await messages(agent_client) if f["kind"] == "message"] == [
            "Still there?"
        ]
    finally:
        await agent_client.close()


def test_an_internal_notes_frame_is_planned_for_the_staff_group_only() -> None:
    from shared.live.frames import conversation_plan

    envelope = {
        "id": "c-1:7.1",
        "type": "conversation.message",
        "aggregateId": "c-1",
        "version": 7,
        "at": "2026-01-05T09:00:00.000Z",
        "data": {"seq": 4, "visibility": "internal", "from": {"role": "agent", "id": "a-1"}},
    }
    note = {"seq": 4, "id": "msg:0000000004", "visibility": "internal", "text": NOTE}
    assert [p.group for p in conversation_plan(envelope, note).pushes] == ["conv.c-1.staff"]
    # Even an event that claimed `patient` for an internal message sends it to staff only.
    lying = {**envelope, "data": {**envelope["data"], "visibility": "patient"}}
    assert [p.group for p in conversation_plan(lying, note).pushes] == ["conv.c-1.staff"]
    # A message document gone by the time the event arrives: nothing goes.
    assert conversation_plan(envelope, None).pushes == []


async def test_closing_takes_the_agent_out_and_tells_them(runtime: Runtime, hub: EmbeddedHub) -> None:
    cid = await active(runtime)
    await publish(runtime)
    agent_client = await connect_as("negotiate_agent", A1)
    patient_client = await connect_as("negotiate_patient", patient(), conversationId=cid)
    staff = f"conv.{cid}.staff"
    try:
        assert hub.app.hub("psc").groups.get(staff)  # the agent's connection is in
        closed = await invoke(
            "supervisor_force_close",
            method="POST",
            bearer=SUPERVISOR,
            route_params={"conversationId": cid},
            json_body={},
        )
        assert closed.status == 200, closed.json
        await publish(runtime)
        assert kinds(await messages(agent_client)) == [("status", "closed"), ("removed", "closed")]
        assert ("status", "closed") in kinds(await messages(patient_client))
        assert not hub.app.hub("psc").groups.get(staff)  # and now out
    finally:
        await agent_client.close()
        await patient_client.close()
