"""The dev host's demo seed: runs on every `--demo` start, so it must never overwrite what a user
changed since, and the tokens it prints must expire."""

from __future__ import annotations

import jwt

from shared.demo import DEMO_USERS, seed_demo
from shared.runtime import Runtime
from tests.conftest import DEV_SECRET, invoke, token

ADMIN = token("Administrator", sub="admin-1")


async def test_seeding_again_keeps_what_a_user_changed(runtime: Runtime) -> None:
    await seed_demo(runtime)
    queue = await invoke(
        "put_queue",
        method="PUT",
        bearer=ADMIN,
        route_params={"queueId": "general"},
        json_body={"name": "General (renamed)", "priority": 7},
    )
    agent = await invoke(
        "put_agent",
        method="PUT",
        bearer=ADMIN,
        route_params={"agentId": "demo-agent-3"},
        json_body={"name": "Renamed", "queues": ["general"], "capacity": 1},
    )
    rules = await invoke(
        "put_routing_rules", method="PUT", bearer=ADMIN, json_body={"rules": [], "fallbackQueueId": "general"}
    )
    away = await invoke(
        "put_my_presence",
        method="PUT",
        bearer=token("Agent", sub="demo-agent-1"),
        json_body={"status": "away"},
    )
    profile = await invoke(
        "put_patient",
        method="PUT",
        bearer=token("Agent", "ClinicalUser", sub="demo-agent-2"),
        route_params={"patientId": "p-demo-2"},
        json_body={"name": "Ben Changed", "language": "en"},
    )
    assert {a.status for a in (queue, agent, rules, away, profile)} == {200}

    await seed_demo(runtime)

    def read(name: str, **route: str) -> object:
        return invoke(name, bearer=ADMIN, route_params=route)

    assert (await read("get_queue", queueId="general")).json["name"] == "General (renamed)"
    assert (await read("get_agent", agentId="demo-agent-3")).json["name"] == "Renamed"
    assert (await read("get_routing_rules")).json["rules"] == []
    assert (await read("get_agent", agentId="demo-agent-1")).json["chosenPresence"] == "away"
    patient = await invoke(
        "get_patient", bearer=token("Agent", sub="demo-agent-1"), route_params={"patientId": "p-demo-2"}
    )
    assert patient.json["name"] == "Ben Changed"


async def test_the_printed_demo_tokens_expire(runtime: Runtime) -> None:
    info = await seed_demo(runtime)
    assert set(info.tokens) == set(DEMO_USERS)
    for printed in info.tokens.values():
        claims = jwt.decode(printed, DEV_SECRET, algorithms=["HS256"], audience="psc-api")
        assert 0 < claims["exp"] - claims["iat"] <= 24 * 3600
