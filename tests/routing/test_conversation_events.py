"""Every change of a conversation writes its events with it, carrying what the KPIs need as it was
at the time (docs/KPIS.md) and never PHI."""

from __future__ import annotations

import json

from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query, where
from shared.runtime import Runtime
from tests.conftest import invoke
from tests.routing.support import (
    SUPERVISOR,
    agent_token,
    deliver,
    enqueue,
    events_of,
    presence,
    put_agent,
    put_queue,
    put_rules,
)

A1, A2 = agent_token("a-1"), agent_token("a-2")


async def act(name: str, bearer: str, cid: str, body: object = None) -> None:
    answer = await invoke(
        name, method="POST", bearer=bearer, route_params={"conversationId": cid}, json_body=body
    )
    assert answer.status in (200, 201), answer.json


async def test_each_move_writes_its_event_with_the_attributes_kpis_need(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general", acceptTimeoutSeconds=30, wrapupSeconds=20, serviceLevelSeconds=45)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"])
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    clock.advance(3)
    await act("decline_conversation", A1, "c-1")
    await put_agent("a-2", queues=["general"])
    await presence("a-1", "offline")
    await presence("a-2", "available")
    await deliver(runtime)
    clock.advance(7)
    await act("accept_conversation", A2, "c-1")
    clock.advance(50)
    await act("close_conversation", A2, "c-1", {"disposition": "resolved"})
    clock.advance(21)
    await deliver(runtime)

    events = await events_of(runtime, "c-1")
    assert [e["eventType"] for e in events] == [
        "conversation.waiting",
        "conversation.offered",
        "conversation.declined",
        "conversation.offered",
        "conversation.accepted",
        "conversation.wrapup",
        "conversation.closed",
    ]
    # One event per change here, named by the version that change wrote.
    assert [e["id"] for e in events] == [f"evt:{v}.1" for v in [e["version"] for e in events]]
    assert len({e["version"] for e in events}) == len(events)
    waiting, offered, declined, offered_again, accepted, wrapup, closed = (e["data"] for e in events)
    assert waiting == {
        "queueId": "general",
        "queuedAt": "2026-01-05T09:00:00.000Z",
        "first": True,
        "escalatedAt": "2026-01-05T09:00:00.000Z",
        "serviceLevelSeconds": 45,
        "priority": 1,
        "firstQueueId": "general",
    }
    assert (offered["agentId"], offered["offerSeq"], offered["queueId"]) == ("a-1", 1, "general")
    assert offered["expiresAt"] == "2026-01-05T09:00:30.000Z"
    assert (declined["agentId"], declined["count"], declined["offerSeq"]) == ("a-1", 1, 1)
    assert (offered_again["agentId"], offered_again["offerSeq"]) == ("a-2", 2)
    assert accepted == {
        "agentId": "a-2",
        "queueId": "general",
        "first": True,
        "queuedAt": "2026-01-05T09:00:00.000Z",
        "acceptedAt": "2026-01-05T09:00:10.000Z",
        "waitSeconds": 10.0,
        "firstWaitSeconds": 10.0,
        "serviceLevelSeconds": 45,
        "firstQueueId": "general",
    }
    assert (wrapup["agentId"], wrapup["wrapupEndsAt"]) == ("a-2", "2026-01-05T09:01:20.000Z")
    assert closed == {
        "queueId": "general",
        "agentId": "a-2",
        "handled": True,
        "activeSeconds": 50.0,
        "wrapupSeconds": 21.0,
        "endReason": "completed",
        "closedAt": "2026-01-05T09:01:21.000Z",
    }
    # Ids, stamps and attributes only: nothing the patient or the bot said, no disposition.
    text = json.dumps(events)
    for phi in ("Needs help", "Summary for the agent", "I feel unwell", "resolved"):
        assert phi not in text


async def test_a_transfer_writes_transferred_then_waiting_in_the_new_queue(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general", serviceLevelSeconds=45)
    await put_queue("billing", serviceLevelSeconds=120)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"])
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    await act("accept_conversation", A1, "c-1")
    clock.advance(30)
    await act("transfer_conversation", A1, "c-1", {"queueId": "billing"})

    *_, transferred, waiting = await events_of(runtime, "c-1")
    assert transferred["eventType"] == "conversation.transferred"
    assert transferred["version"] == waiting["version"]
    assert (transferred["n"], waiting["n"]) == (1, 2)
    assert transferred["data"] == {
        "fromQueueId": "general",
        "toQueueId": "billing",
        "fromAgentId": "a-1",
        "toAgentId": None,
        "engaged": True,
        "status": "active",
        "cause": "transfer",
    }
    assert waiting["data"]["first"] is False
    assert (waiting["data"]["queueId"], waiting["data"]["serviceLevelSeconds"]) == ("billing", 120)
    assert waiting["data"]["queuedAt"] == "2026-01-05T09:00:30.000Z"
    assert waiting["data"]["firstQueueId"] == "general"


async def test_a_patient_who_leaves_while_waiting_writes_abandoned_and_closed(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general", serviceLevelSeconds=45)
    await put_rules([], "general")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    clock.advance(12)
    await act("abandon_conversation", SUPERVISOR, "c-1")

    *_, abandoned, closed = await events_of(runtime, "c-1")
    assert abandoned["eventType"] == "conversation.abandoned"
    assert abandoned["data"] == {
        "queueId": "general",
        "agentId": None,
        "waitSeconds": 12.0,
        "serviceLevelSeconds": 45,
        "firstQueueId": "general",
        "abandonedAt": "2026-01-05T09:00:12.000Z",
    }
    assert closed["eventType"] == "conversation.closed"
    assert (closed["data"]["handled"], closed["data"]["endReason"]) == (False, "abandoned")
    assert closed["data"]["activeSeconds"] is None


async def test_every_change_of_an_agent_writes_agent_presence_with_load_and_capacity(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general")
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=1)
    clock.advance(1)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    clock.advance(1)
    await deliver(runtime)  # offered: load 1 of 1, presence follows load

    page = await runtime.store.container("agents").query(
        Query((where("type", "=", "event"),)), partition_key="a-1", max_items=100
    )
    events = sorted(page.items, key=lambda e: e["version"])
    assert {e["eventType"] for e in events} == {"agent.presence"}
    assert [e["data"] for e in events] == [
        {
            "status": "offline",
            "chosen": "offline",
            "load": 0,
            "capacity": 1,
            "queues": ["general"],
            "at": "2026-01-05T09:00:00.000Z",
        },
        {
            "status": "available",
            "chosen": "available",
            "load": 0,
            "capacity": 1,
            "queues": ["general"],
            "at": "2026-01-05T09:00:01.000Z",
        },
        {
            "status": "dnd",
            "chosen": "available",
            "load": 1,
            "capacity": 1,
            "queues": ["general"],
            "at": "2026-01-05T09:00:02.000Z",
        },
    ]
    assert [e["id"] for e in events] == ["evt:1.1", "evt:2.1", "evt:3.1"]
