"""Routing administration through the registered functions: queues, rules and agents."""

from __future__ import annotations

from shared.runtime import Runtime
from tests.conftest import invoke
from tests.routing.support import (
    ADMIN,
    SUPERVISOR,
    agent,
    agent_token,
    all_items,
    presence,
    put_agent,
    put_queue,
    token,
)

AGENT = token("Agent", sub="a-1")


async def test_a_queue_is_created_then_replaced_with_defaults_filled_in(runtime: Runtime) -> None:
    created = await put_queue("general")
    assert created.status == 201
    assert created.json["priority"] == 100
    assert created.json["assignmentMethod"] == "highest-capacity"
    replaced = await put_queue(
        "general", priority=5, skillMatch="exact-then-closest", exactMatchTimeoutSeconds=20
    )
    assert replaced.status == 200
    read = await invoke("get_queue", bearer=SUPERVISOR, route_params={"queueId": "general"})
    assert read.json["priority"] == 5
    assert read.json["skillMatch"] == "exact-then-closest"
    listed = await invoke("list_queues", bearer=ADMIN)
    assert [q["id"] for q in listed.json["items"]] == ["general"]


async def test_bad_queues_are_400_and_nothing_is_written(runtime: Runtime) -> None:
    cases = [
        {"name": "x", "assignmentMethod": "loudest"},
        {"name": "x", "operatingHours": {"timeZone": "Mars/Olympus", "weeklyHours": {}}},
        {"name": "x", "operatingHours": {"timeZone": "UTC", "weeklyHours": {"mon": [["17:00", "08:00"]]}}},
        {"name": "x", "overflow": {"action": "transfer"}},
        {"priority": 1},
    ]
    for body in cases:
        answer = await invoke(
            "put_queue", method="PUT", bearer=ADMIN, route_params={"queueId": "q"}, json_body=body
        )
        assert answer.status == 400, body
        assert answer.json["errors"], body
    # Well formed, but naming a queue that does not exist: 422 (issue 11), still nothing written.
    unknown = {"name": "x", "overflow": {"action": "transfer", "targetQueueId": "nowhere"}}
    answer = await invoke(
        "put_queue", method="PUT", bearer=ADMIN, route_params={"queueId": "q"}, json_body=unknown
    )
    assert answer.status == 422
    assert answer.json["errors"] == [{"field": "overflow.targetQueueId", "message": "is not a known queue"}]
    bad_id = await invoke(
        "put_queue",
        method="PUT",
        bearer=ADMIN,
        route_params={"queueId": "no spaces"},
        json_body={"name": "x"},
    )
    assert bad_id.status == 400
    assert await all_items(runtime, "routing") == []


async def test_only_administrators_change_routing(runtime: Runtime) -> None:
    for bearer in (AGENT, SUPERVISOR, token("Patient", patient_id="p-1")):
        answer = await invoke(
            "put_queue", method="PUT", bearer=bearer, route_params={"queueId": "q"}, json_body={"name": "x"}
        )
        assert answer.status == 403
    assert (
        await invoke("put_queue", method="PUT", route_params={"queueId": "q"}, json_body={"name": "x"})
    ).status == 401
    assert (await invoke("list_agents", bearer=AGENT)).status == 403
    assert await all_items(runtime, "routing") == []


async def test_rules_and_agents_that_name_unknown_queues_are_rejected(runtime: Runtime) -> None:
    await put_queue("general")
    rules = {
        "rules": [{"when": {}, "queueId": "general"}, {"queueId": "ghost"}],
        "fallbackQueueId": "phantom",
    }
    answer = await invoke("put_routing_rules", method="PUT", bearer=ADMIN, json_body=rules)
    assert answer.status == 422
    assert {e["field"] for e in answer.json["errors"]} == {"rules.1.queueId", "fallbackQueueId"}
    assert (await invoke("get_routing_rules", bearer=ADMIN)).status == 404

    agent_body = {"name": "A", "queues": ["general", "ghost"]}
    answer = await invoke(
        "put_agent", method="PUT", bearer=ADMIN, route_params={"agentId": "a-1"}, json_body=agent_body
    )
    assert answer.status == 422
    assert answer.json["errors"][0]["field"] == "queues.1"
    assert await all_items(runtime, "agents") == []


async def test_an_admin_edit_keeps_the_agents_presence_and_load_and_moves_their_seats(
    runtime: Runtime,
) -> None:
    await put_queue("general")
    await put_queue("billing")
    created = await put_agent(
        "a-1", queues=["general"], capacity=2, skills={"billing": 3}, languages=["en", "pl"]
    )
    assert created.status == 201
    await presence("a-1", "available")
    replaced = await put_agent("a-1", queues=["billing"], capacity=4)
    assert replaced.status == 200
    state = await agent(runtime, "a-1")
    assert state["chosenPresence"] == "available"
    assert state["profile"]["capacity"] == 4
    seats = [d for d in await all_items(runtime, "routing") if d.get("type") == "seat"]
    assert [(s["queueId"], s["capacity"]) for s in seats] == [("billing", 4)]
    read = await invoke("get_agent", bearer=SUPERVISOR, route_params={"agentId": "a-1"})
    assert read.json["presence"] == "available"
    assert read.json["queues"] == ["billing"]
    assert (await invoke("get_agent", bearer=SUPERVISOR, route_params={"agentId": "nobody"})).status == 404


async def test_presence_needs_a_registered_agent_and_a_known_status(runtime: Runtime) -> None:
    unknown = await invoke(
        "put_my_presence", method="PUT", bearer=agent_token("stranger"), json_body={"status": "available"}
    )
    assert unknown.status == 404
    await put_queue("general")
    await put_agent("a-1", queues=["general"])
    bad = await invoke("put_my_presence", method="PUT", bearer=AGENT, json_body={"status": "sleepy"})
    assert bad.status == 400
    assert (await agent(runtime, "a-1"))["chosenPresence"] == "offline"
    supervisor = await invoke(
        "put_my_presence", method="PUT", bearer=SUPERVISOR, json_body={"status": "available"}
    )
    assert supervisor.status == 403
