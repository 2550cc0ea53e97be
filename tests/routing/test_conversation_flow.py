"""Routing end to end on the embedded store and bus: a queued conversation is offered to the right
agent, accepted, answered, closed through wrap-up, and capacity comes back."""

from __future__ import annotations

import logging

import pytest

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from tests.conftest import invoke
from tests.routing.support import (
    SUPERVISOR,
    agent,
    agent_token,
    all_items,
    conversation,
    deliver,
    enqueue,
    messages_of,
    presence,
    put_agent,
    put_queue,
    put_rules,
    token,
)

A1 = agent_token("a-1")
A2 = agent_token("a-2")


async def setup_general(**queue: object) -> None:
    await put_queue("general", **{"acceptTimeoutSeconds": 30, "wrapupSeconds": 20, **queue})
    await put_rules([], "general")


async def offer_one(runtime: Runtime, *, capacity: int, patient_id: str = "p-1") -> None:
    """The `general` queue, agent a-1 available with `capacity`, and conversation c-1 routed."""
    await setup_general()
    await put_agent("a-1", queues=["general"], capacity=capacity)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1", patient_id=patient_id)
    await deliver(runtime)


async def test_a_conversation_is_offered_accepted_answered_and_closed(
    runtime: Runtime, clock: ManualClock
) -> None:
    await offer_one(runtime, capacity=2)

    doc = await conversation(runtime, "c-1")
    assert doc["status"] == "offered"
    assert doc["agentId"] == "a-1"
    assert doc["offeredAt"]
    assert doc["escalatedAt"]
    assert doc["createdAt"]
    mine = await invoke("my_conversations", bearer=A1)
    assert [c["id"] for c in mine.json["items"]] == ["c-1"]

    accepted = await invoke(
        "accept_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"}
    )
    assert accepted.status == 200
    assert accepted.json["status"] == "active"
    assert accepted.json["acceptedAt"]

    sent = await invoke(
        "send_message",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"text": "Hello"},
    )
    assert sent.status == 201
    assert (sent.json["seq"], sent.json["from"]["role"], sent.json["visibility"]) == (2, "agent", "patient")
    assert (await conversation(runtime, "c-1"))["firstAgentResponseAt"]

    clock.advance(5)
    closed = await invoke(
        "close_conversation",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"disposition": "resolved"},
    )
    assert closed.status == 200
    assert closed.json["status"] == "wrapup"
    assert closed.json["wrapupAt"]
    assert (await agent(runtime, "a-1"))["used"] == 1  # the wrap-up block keeps the capacity

    clock.advance(21)
    await deliver(runtime)
    doc = await conversation(runtime, "c-1")
    assert doc["status"] == "closed"
    assert doc["closedAt"]
    assert doc["disposition"] == "resolved"
    state = await agent(runtime, "a-1")
    assert state["used"] == 0
    assert state["presence"] == "available"

    again = await invoke(
        "close_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"}, json_body={}
    )
    assert again.status == 409  # closing a closed conversation
    forced = await invoke(
        "supervisor_force_close",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": "c-1"},
        json_body={},
    )
    assert forced.status == 409
    assert forced.headers["Content-Type"].startswith("application/problem+json")


async def test_rules_route_by_urgency_language_and_skills(runtime: Runtime) -> None:
    await put_queue("urgent", priority=1)
    await put_queue("spanish", priority=50)
    await put_queue("general", priority=100)
    await put_rules(
        [
            {"when": {"urgency": ["emergency", "urgent"]}, "queueId": "urgent", "skills": {"triage": 3}},
            {"when": {"language": ["es"]}, "queueId": "spanish"},
        ],
        "general",
    )
    await put_agent("nurse", queues=["urgent"], skills={"triage": 5})
    await put_agent("novice", queues=["urgent"], skills={"triage": 1})
    await put_agent("maria", queues=["spanish"], languages=["es"])
    for agent_id in ("nurse", "novice", "maria"):
        await presence(agent_id, "available")
    await enqueue(runtime, "c-urgent", urgency="urgent")
    await enqueue(runtime, "c-es", language="es-MX")
    await enqueue(runtime, "c-plain")
    await deliver(runtime)

    urgent = await conversation(runtime, "c-urgent")
    assert (urgent["queueId"], urgent["agentId"], urgent["priority"]) == ("urgent", "nurse", 2)
    spanish = await conversation(runtime, "c-es")
    assert (spanish["queueId"], spanish["agentId"]) == ("spanish", "maria")
    plain = await conversation(runtime, "c-plain")
    assert (plain["queueId"], plain["status"]) == ("general", "waiting")  # nobody serves general


async def test_presence_follows_load_but_a_chosen_away_is_kept(runtime: Runtime) -> None:
    await offer_one(runtime, capacity=2)
    assert (await agent(runtime, "a-1"))["presence"] == "busy"
    await enqueue(runtime, "c-2")
    await deliver(runtime)
    assert (await agent(runtime, "a-1"))["presence"] == "dnd"  # full
    await enqueue(runtime, "c-3")
    await deliver(runtime)
    assert (await conversation(runtime, "c-3"))["status"] == "waiting"

    await presence("a-1", "away")
    await invoke("decline_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"})
    await deliver(runtime)
    state = await agent(runtime, "a-1")
    assert state["presence"] == "away"
    assert state["used"] == 1
    assert (await conversation(runtime, "c-1"))["status"] == "waiting"  # nobody present gets it


async def test_three_declines_exclude_the_agent_for_that_conversation(runtime: Runtime) -> None:
    await setup_general()
    await put_agent("a-1", queues=["general"], capacity=1)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    for round_ in range(3):
        await deliver(runtime)
        doc = await conversation(runtime, "c-1")
        assert (doc["status"], doc["agentId"]) == ("offered", "a-1"), round_
        declined = await invoke(
            "decline_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"}
        )
        assert declined.status == 200
        assert declined.json["status"] == "waiting"
    await deliver(runtime)
    doc = await conversation(runtime, "c-1")
    assert doc["status"] == "waiting"
    assert doc["declines"] == {"a-1": 3}

    await put_agent("a-2", queues=["general"], capacity=1)
    await presence("a-2", "available")
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["agentId"] == "a-2"


async def test_an_offer_not_accepted_in_time_is_not_a_decline(runtime: Runtime, clock: ManualClock) -> None:
    await setup_general()
    await put_agent("a-1", queues=["general"], capacity=1)
    await put_agent("a-2", queues=["general"], capacity=1)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["agentId"] == "a-1"
    await presence("a-2", "available")
    clock.advance(31)
    await deliver(runtime)
    doc = await conversation(runtime, "c-1")
    assert doc["declines"] == {}
    assert doc["offerTimeouts"] == {"a-1": 1}
    assert doc["status"] == "offered"
    # a-1 let it expire: another eligible agent comes first.
    assert doc["agentId"] == "a-2"
    assert (await agent(runtime, "a-1"))["used"] + (await agent(runtime, "a-2"))["used"] == 1
    assert [e["event"] for e in doc["history"]] == ["open", "queue", "offer", "expire", "offer"]


async def test_offers_that_expire_never_exclude_the_agent(runtime: Runtime, clock: ManualClock) -> None:
    await setup_general()
    await put_agent("a-1", queues=["general"], capacity=1)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    for round_ in range(4):
        doc = await conversation(runtime, "c-1")
        assert (doc["status"], doc["agentId"]) == ("offered", "a-1"), round_
        clock.advance(31)
        await deliver(runtime)
    doc = await conversation(runtime, "c-1")
    assert (doc["status"], doc["agentId"]) == ("offered", "a-1")  # alone, a-1 still gets it
    assert doc["declines"] == {}
    assert doc["offerTimeouts"] == {"a-1": 4}
    assert (await agent(runtime, "a-1"))["used"] == 1

    declined = await invoke(
        "decline_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"}
    )
    assert declined.status == 200, declined.json
    assert declined.json["declines"] == {"a-1": 1}  # only explicit declines count
    assert declined.json["offerTimeouts"] == {"a-1": 4}


async def test_redelivered_routing_message_changes_nothing(runtime: Runtime) -> None:
    await offer_one(runtime, capacity=3)
    before_conv = await conversation(runtime, "c-1")
    before_agent = await agent(runtime, "a-1")
    from shared.routing.api import handle_routing_message

    for _ in range(3):
        await handle_routing_message(
            runtime.store, runtime.bus, runtime.clock, {"kind": "conversation", "conversationId": "c-1"}
        )
        await handle_routing_message(
            runtime.store, runtime.bus, runtime.clock, {"kind": "agent", "agentId": "a-1"}
        )
    after_conv = await conversation(runtime, "c-1")
    after_agent = await agent(runtime, "a-1")
    assert after_conv["_etag"] == before_conv["_etag"]
    assert after_agent["_etag"] == before_agent["_etag"]
    waiting = [d for d in await all_items(runtime, "routing") if d.get("type") == "waiting"]
    assert waiting == []


async def test_the_patient_leaving_abandons_a_waiting_or_offered_conversation(runtime: Runtime) -> None:
    await offer_one(runtime, capacity=1, patient_id="p-1")
    other = await invoke(
        "abandon_conversation",
        method="POST",
        bearer=token("Patient", sub="ps-2", patient_id="p-2"),
        route_params={"conversationId": "c-1"},
    )
    assert other.status == 404
    mine = await invoke(
        "abandon_conversation",
        method="POST",
        bearer=token("Patient", sub="ps-1", patient_id="p-1"),
        route_params={"conversationId": "c-1"},
    )
    assert mine.status == 200
    assert mine.json["status"] == "closed"
    assert mine.json["abandonedAt"]
    await deliver(runtime)  # the release reaches routing through the routing queue
    assert (await agent(runtime, "a-1"))["used"] == 0
    again = await invoke(
        "abandon_conversation",
        method="POST",
        bearer=token("Bot.Escalate", sub="bot"),
        route_params={"conversationId": "c-1"},
    )
    assert again.status == 409


async def test_agents_see_only_their_own_conversations(runtime: Runtime) -> None:
    await setup_general()
    await put_agent("a-1", queues=["general"], capacity=1)
    await put_agent("a-2", queues=["general"], capacity=1)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    theirs = await invoke("get_conversation", bearer=A2, route_params={"conversationId": "c-1"})
    assert theirs.status == 404
    accept = await invoke(
        "accept_conversation", method="POST", bearer=A2, route_params={"conversationId": "c-1"}
    )
    assert accept.status == 404
    mine = await invoke("get_conversation", bearer=A1, route_params={"conversationId": "c-1"})
    assert mine.status == 200
    messages = await invoke("read_messages", bearer=A1, route_params={"conversationId": "c-1"})
    assert messages.json["items"][0]["text"] == "I feel unwell"
    assert (await invoke("read_messages", bearer=A2, route_params={"conversationId": "c-1"})).status == 404
    unknown = await invoke("get_conversation", bearer=SUPERVISOR, route_params={"conversationId": "nope"})
    assert unknown.status == 404
    patient = await invoke(
        "get_conversation", bearer=token("Patient", patient_id="p-1"), route_params={"conversationId": "c-1"}
    )
    assert patient.status == 403


async def test_illegal_transitions_are_409(runtime: Runtime) -> None:
    await offer_one(runtime, capacity=1)
    message = await invoke(
        "send_message",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"text": "hi"},
    )
    assert message.status == 409  # offered, not yet accepted
    close = await invoke(
        "close_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"}, json_body={}
    )
    assert close.status == 409
    await invoke("accept_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"})
    decline = await invoke(
        "decline_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"}
    )
    assert decline.status == 409


async def test_bad_bodies_are_400_and_change_nothing(runtime: Runtime) -> None:
    await offer_one(runtime, capacity=1)
    await invoke("accept_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"})
    before = await conversation(runtime, "c-1")
    empty = await invoke(
        "send_message",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"text": ""},
    )
    assert empty.status == 400
    assert empty.json["errors"][0]["field"] == "body.text"
    both = await invoke(
        "transfer_conversation",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"queueId": "general", "agentId": "a-2"},
    )
    assert both.status == 400
    unknown_queue = await invoke(
        "transfer_conversation",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"queueId": "nowhere"},
    )
    assert unknown_queue.status == 422
    assert (await conversation(runtime, "c-1"))["_etag"] == before["_etag"]


async def test_an_agent_transfers_to_a_queue_and_capacity_follows(runtime: Runtime) -> None:
    await setup_general()
    await put_queue("billing")
    await put_agent("a-1", queues=["general"], capacity=1)
    await put_agent("b-1", queues=["billing"], capacity=1)
    await presence("a-1", "available")
    await presence("b-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    await invoke("accept_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"})
    moved = await invoke(
        "transfer_conversation",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"queueId": "billing"},
    )
    assert moved.status == 200
    assert moved.json["queueId"] == "billing"
    assert moved.json["transfers"] == 1
    await deliver(runtime)
    doc = await conversation(runtime, "c-1")
    assert (doc["status"], doc["agentId"]) == ("offered", "b-1")
    assert (await agent(runtime, "a-1"))["used"] == 0


async def test_supervisor_board_assign_and_force_close_are_audited(runtime: Runtime) -> None:
    await setup_general()
    await put_agent("a-1", queues=["general"], capacity=1)
    await presence("a-1", "offline")
    await enqueue(runtime, "c-1")
    await enqueue(runtime, "c-2")
    await deliver(runtime)
    board = await invoke("supervisor_board", bearer=SUPERVISOR, params={"status": "waiting"})
    assert board.status == 200
    assert {c["id"] for c in board.json["items"]} == {"c-1", "c-2"}
    assert "transcript" not in board.json["items"][0]
    general = next(q for q in board.json["queues"] if q["queueId"] == "general")
    assert general["depth"] == 2
    assert board.json["agents"][0]["presence"] == "offline"
    bad = await invoke("supervisor_board", bearer=SUPERVISOR, params={"status": "sleeping"})
    assert bad.status == 400
    assert (await invoke("supervisor_board", bearer=A1)).status == 403

    assigned = await invoke(
        "supervisor_assign",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": "c-1"},
        json_body={"agentId": "a-1"},
    )
    assert assigned.status == 200
    assert assigned.json["agentId"] == "a-1"
    assert assigned.json["status"] == "offered"
    closed = await invoke(
        "supervisor_force_close",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": "c-2"},
        json_body={"reason": "duplicate"},
    )
    assert closed.status == 200
    assert closed.json["status"] == "closed"
    audit = [d for d in await all_items(runtime, "audit") if d["actor"] == "super-1"]
    assert {(d["action"], d["resource"]) for d in audit} >= {
        ("transfer", "conversations/c-1"),
        ("close", "conversations/c-2"),
    }
    wrong = await invoke(
        "supervisor_assign",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-2"},
        json_body={"agentId": "a-1"},
    )
    assert wrong.status == 403


async def test_overflow_ends_or_transfers_when_a_queue_is_full_or_waited_too_long(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("backup")
    await put_queue("small", overflow={"maxWaiting": 1, "action": "transfer", "targetQueueId": "backup"})
    await put_queue("slow", overflow={"maxWaitSeconds": 60, "action": "end", "message": "Call us tomorrow."})
    await put_rules([{"when": {"context": {"line": "small"}}, "queueId": "small"}], "slow")
    await enqueue(runtime, "c-1", context={"line": "small"})
    await enqueue(runtime, "c-2", context={"line": "small"})
    await enqueue(runtime, "c-3")
    await deliver(runtime)
    assert (await conversation(runtime, "c-1"))["queueId"] == "small"
    second = await conversation(runtime, "c-2")
    assert (second["queueId"], second["status"], second["overflowedFrom"]) == ("backup", "waiting", "small")

    clock.advance(61)
    sweep = registered_functions_timer()
    await sweep()
    third = await conversation(runtime, "c-3")
    assert third["status"] == "closed"
    assert third["endReason"] == "overflow-wait"
    last = (await messages_of(runtime, "c-3"))[-1]
    assert (last["text"], last["from"], last["seq"]) == ("Call us tomorrow.", {"role": "system"}, 2)


async def test_out_of_hours_conversations_overflow_on_arrival(runtime: Runtime, clock: ManualClock) -> None:
    hours = {"timeZone": "Europe/Warsaw", "weeklyHours": {"sat": [["09:00", "12:00"]]}}
    await put_queue("weekend", operatingHours=hours, overflow={"action": "end"})
    await put_rules([], "weekend")
    await enqueue(runtime, "c-1")  # the manual clock starts on a Monday
    await deliver(runtime)
    doc = await conversation(runtime, "c-1")
    assert doc["status"] == "closed"
    assert doc["endReason"] == "overflow-arrival"


def registered_functions_timer():  # type: ignore[no-untyped-def]
    from azure.functions.timer import TimerRequest

    from tests.conftest import registered_functions

    fn = registered_functions()["routing_sweep"].get_user_function()
    return lambda: fn(TimerRequest(past_due=False))


async def test_no_transcript_text_reaches_the_logs(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await offer_one(runtime, capacity=1)
    await invoke("accept_conversation", method="POST", bearer=A1, route_params={"conversationId": "c-1"})
    await invoke(
        "send_message",
        method="POST",
        bearer=A1,
        route_params={"conversationId": "c-1"},
        json_body={"text": "Take 2 pills"},
    )
    await invoke("get_conversation", bearer=A1, route_params={"conversationId": "c-1"})
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "I feel unwell" not in text
    assert "Take 2 pills" not in text
    assert "Summary for the agent" not in text
