"""The negotiate endpoints: a short-lived hub URL whose token names exactly the groups the caller
may see; another patient's conversation, bad ids and wrong roles are refused and write nothing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import jwt
import pytest

from devhost.realtime_server import EmbeddedHub
from shared.runtime import Runtime
from tests.conftest import stored_items, token
from tests.functions.test_messages import A1, active, patient
from tests.live.support import groups_of, hub_for, negotiated
from tests.routing.support import SUPERVISOR, agent_token


@pytest.fixture
async def hub(runtime: Runtime) -> AsyncIterator[EmbeddedHub]:
    async for running in hub_for(runtime):
        yield running


def claims(url: str) -> dict[str, object]:
    return jwt.decode(url.partition("access_token=")[2], options={"verify_signature": False})


async def test_a_patient_gets_their_conversations_patient_group_only_and_the_read_is_audited(
    runtime: Runtime, hub: EmbeddedHub
) -> None:
    cid = await active(runtime)
    audited = len(await stored_items(runtime, "audit"))

    answer = await negotiated("negotiate_patient", patient(), conversationId=cid)

    assert answer.status == 200, answer.json
    assert set(answer.json) == {"url"}
    url = answer.json["url"]
    assert url.startswith(f"ws://127.0.0.1:{hub.port}/client/hubs/psc?access_token=")
    assert groups_of(url) == [f"conv.{cid}.patient"]
    found = claims(url)
    assert found["sub"] == "sub-p-1"
    assert "role" not in found  # may not join, leave or send
    assert 0 < int(str(found["exp"])) - time.time() <= 5 * 60
    assert len(await stored_items(runtime, "audit")) == audited + 1


async def test_another_patients_conversation_is_404_and_nothing_is_written(
    runtime: Runtime, hub: EmbeddedHub
) -> None:
    cid = await active(runtime)
    audited = len(await stored_items(runtime, "audit"))

    for bearer, conversation_id in ((patient("p-2"), cid), (patient(), "c-unknown")):
        answer = await negotiated("negotiate_patient", bearer, conversationId=conversation_id)
        assert answer.status == 404, answer.json
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert "url" not in answer.json
    assert len(await stored_items(runtime, "audit")) == audited


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "x" * 101, ".."])
async def test_a_bad_conversation_id_is_a_400_problem(runtime: Runtime, hub: EmbeddedHub, bad: str) -> None:
    await active(runtime)
    audited = len(await stored_items(runtime, "audit"))
    answer = await negotiated("negotiate_patient", patient(), conversationId=bad)
    assert answer.status == 400, answer.json
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert len(await stored_items(runtime, "audit")) == audited


async def test_each_negotiate_refuses_the_other_roles(runtime: Runtime, hub: EmbeddedHub) -> None:
    cid = await active(runtime)
    refused = [
        ("negotiate_patient", A1, {"conversationId": cid}),
        ("negotiate_patient", SUPERVISOR, {"conversationId": cid}),
        ("negotiate_agent", patient(), {}),
        ("negotiate_agent", SUPERVISOR, {}),
        ("negotiate_supervisor", A1, {}),
        ("negotiate_supervisor", patient(), {}),
    ]
    for name, bearer, route in refused:
        answer = await negotiated(name, bearer, **route)
        assert answer.status == 403, (name, answer.json)
        assert "url" not in answer.json
    for name, route in (("negotiate_patient", {"conversationId": cid}), ("negotiate_agent", {})):
        assert (await negotiated(name, "not-a-token", **route)).status == 401


async def test_an_agent_gets_their_own_group_and_the_conversations_they_hold(
    runtime: Runtime, hub: EmbeddedHub
) -> None:
    cid = await active(runtime)

    mine = await negotiated("negotiate_agent", A1)
    assert mine.status == 200, mine.json
    assert groups_of(mine.json["url"]) == ["agent.a-1", f"conv.{cid}.staff"]
    assert claims(mine.json["url"])["sub"] == "a-1"  # the id the feed names to add or remove

    # An agent who holds nothing hears only their own group; one not registered is 404.
    from tests.routing.support import put_agent

    await put_agent("a-2", queues=["general"])
    assert groups_of((await negotiated("negotiate_agent", agent_token("a-2"))).json["url"]) == ["agent.a-2"]
    assert (await negotiated("negotiate_agent", agent_token("a-9"))).status == 404


async def test_a_supervisor_gets_the_board_group(runtime: Runtime, hub: EmbeddedHub) -> None:
    answer = await negotiated("negotiate_supervisor", SUPERVISOR)
    assert answer.status == 200, answer.json
    assert groups_of(answer.json["url"]) == ["supervisors"]
    assert (await negotiated("negotiate_supervisor", token("Supervisor", sub="has space"))).status == 200
