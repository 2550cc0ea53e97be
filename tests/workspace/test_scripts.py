"""Agent scripts through the HTTP edge: writing them (cycles refused and named, forward references
allowed, unknown placeholders refused), and the assigned agent's filled-in script for a
conversation (chosen by appliesTo, sub-scripts expanded)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kernel.documents import Query
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, token
from tests.workspace.support import (
    ADMIN,
    AGENT,
    OTHER_AGENT,
    SUPERVISOR,
    all_items,
    held_conversation,
    put_agent,
    put_patient,
    put_queue,
)


def text(words: str) -> dict[str, Any]:
    return {"type": "text", "text": words}


def sub(script_id: str) -> dict[str, Any]:
    return {"type": "script", "scriptId": script_id}


async def put_script(
    script_id: str,
    *steps: dict[str, Any],
    bearer: str = ADMIN,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Answer:
    body = {"name": f"Script {script_id}", "language": "en", "steps": list(steps) or [text("Hello")], **extra}
    return await invoke(
        "put_script",
        method="PUT",
        bearer=bearer,
        json_body=body,
        headers=headers,
        route_params={"scriptId": script_id},
    )


async def conversation_script(conversation_id: str, bearer: str = AGENT) -> Answer:
    return await invoke(
        "conversation_script", bearer=bearer, route_params={"conversationId": conversation_id}
    )


def cycle_message(answer: Answer) -> str:
    assert answer.status == 400, answer.json
    (error,) = answer.json["errors"]
    assert error["field"] == "body.steps"
    message: str = error["message"]
    return message


# Writing ------------------------------------------------------------------------------------------


async def test_a_script_is_created_then_replaced_and_read_back(runtime: Runtime) -> None:
    created = await put_script("greeting", text("Hello {patient.firstName}"), priority=5)
    assert created.status == 201
    assert created.json["steps"] == [{"type": "text", "text": "Hello {patient.firstName}"}]
    replaced = await put_script("greeting", text("Hi"), headers={"If-Match": created.headers["ETag"]})
    assert replaced.status == 200
    stale = await put_script("greeting", text("Hey"), headers={"If-Match": created.headers["ETag"]})
    assert stale.status == 412
    read = await invoke("get_script", bearer=SUPERVISOR, route_params={"scriptId": "greeting"})
    assert read.status == 200
    assert read.json["steps"] == [{"type": "text", "text": "Hi"}]
    assert read.headers["ETag"] == replaced.headers["ETag"]


async def test_a_script_calling_itself_is_refused_naming_the_cycle(runtime: Runtime) -> None:
    assert cycle_message(await put_script("loop", sub("loop"))) == "would create a cycle: loop → loop"
    assert (await invoke("get_script", bearer=ADMIN, route_params={"scriptId": "loop"})).status == 404


async def test_a_cycle_of_two_is_refused_naming_both_scripts(runtime: Runtime) -> None:
    assert (await put_script("a", sub("b"))).status == 201  # b is not defined yet: allowed
    assert cycle_message(await put_script("b", sub("a"))) == "would create a cycle: b → a → b"


async def test_a_cycle_of_three_is_refused_naming_all_three(runtime: Runtime) -> None:
    assert (await put_script("a", sub("b"))).status == 201
    assert (await put_script("b", sub("c"))).status == 201
    assert cycle_message(await put_script("c", text("x"), sub("a"))) == "would create a cycle: c → a → b → c"
    # Nor can an existing link be turned into one later.
    assert (await put_script("c", text("fine"))).status == 201
    assert cycle_message(await put_script("c", sub("a"))) == "would create a cycle: c → a → b → c"


async def test_shared_sub_scripts_are_not_a_cycle(runtime: Runtime) -> None:
    """The non-cyclic control: a diamond (a uses b and c, both use d) is fine."""
    for script_id, steps in (
        ("d", [text("d")]),
        ("b", [sub("d")]),
        ("c", [sub("d")]),
        ("a", [sub("b"), sub("c")]),
    ):
        assert (await put_script(script_id, *steps)).status == 201, script_id


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("Hello {patient.dateOfBirth}", "unknown placeholder {patient.dateOfBirth}"),
        ("Hello {patient.firstname}", "unknown placeholder {patient.firstname}"),
        ("Hello {patient.name", "unmatched brace"),
        ("Hello }", "unmatched brace"),
    ],
)
async def test_unknown_placeholders_and_stray_braces_are_refused(
    runtime: Runtime, words: str, message: str
) -> None:
    answer = await put_script("s", text("ok"), text(words))
    assert answer.status == 400
    assert answer.json["errors"][0]["field"] == "body.steps[1].text"
    assert message in answer.json["errors"][0]["message"]
    assert await all_items(runtime, "scripts") == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "language": "en", "steps": []},
        {"name": "x", "language": "en", "steps": [{"type": "action", "action": "send-article"}]},
        {"name": "x", "language": "en", "steps": [{"type": "action", "action": "consult", "articleId": "a"}]},
        {"name": "x", "language": "en", "steps": [{"type": "dance"}]},
        {"name": "x", "language": "english", "steps": [{"type": "text", "text": "hi"}]},
        {"name": "x", "language": "en", "steps": [{"type": "text", "text": "hi"}], "priority": "1"},
        {
            "name": "x",
            "language": "en",
            "steps": [{"type": "text", "text": "hi"}],
            "appliesTo": {"urgency": "soon"},
        },
    ],
)
async def test_bad_scripts_are_refused_and_nothing_is_written(runtime: Runtime, body: dict[str, Any]) -> None:
    answer = await invoke(
        "put_script", method="PUT", bearer=ADMIN, json_body=body, route_params={"scriptId": "x"}
    )
    assert answer.status == 400, answer.json
    assert await all_items(runtime, "scripts") == []


async def test_only_administrators_write_scripts(runtime: Runtime) -> None:
    for bearer in (AGENT, SUPERVISOR, token("Patient", patient_id="p-1")):
        assert (await put_script("s", bearer=bearer)).status == 403
    assert (await put_script("_index")).status == 400  # the index's own id is reserved


# Reading for a conversation -------------------------------------------------------------------


@pytest.fixture
async def setting(runtime: Runtime) -> Runtime:
    await put_patient("p-1", givenName="Anna", familyName="Kowalska")
    await put_queue("general", "General questions")
    await put_agent()
    await held_conversation(runtime, "c-1", "p-1", urgency="urgent")
    return runtime


async def test_the_agent_gets_the_script_filled_in_with_sub_scripts_expanded(setting: Runtime) -> None:
    await put_script(
        "closing", text("Anything else, {patient.firstName}?"), {"type": "action", "action": "open-booking"}
    )
    await put_script(
        "welcome",
        text("Hello {patient.firstName}, I am {agent.name} from {queue.name} ({{escalated}})."),
        sub("closing"),
        sub("not-yet-written"),
        {"type": "action", "action": "send-article", "articleId": "reset-password"},
        priority=1,  # "closing" applies to everything too, at the default priority
    )
    answer = await conversation_script("c-1")
    assert answer.status == 200, answer.json
    assert answer.json == {
        "scriptId": "welcome",
        "name": "Script welcome",
        "language": "en",
        "steps": [
            {
                "type": "text",
                "text": "Hello Anna, I am Alex Agent from General questions ({escalated}).",
                "scriptId": "welcome",
            },
            {"type": "text", "text": "Anything else, Anna?", "scriptId": "closing"},
            {"type": "action", "action": "open-booking", "scriptId": "closing"},
            {
                "type": "action",
                "action": "send-article",
                "articleId": "reset-password",
                "scriptId": "welcome",
            },
        ],
        "missing": ["not-yet-written"],
    }


async def test_without_a_given_name_the_first_word_of_the_name_greets(setting: Runtime) -> None:
    await put_patient("p-1", name="Anna Maria Kowalska")  # givenName cleared
    await put_script("welcome", text("Hello {patient.firstName} ({patient.name})"))
    answer = await conversation_script("c-1")
    assert answer.json["steps"][0]["text"] == "Hello Anna (Anna Maria Kowalska)"


async def test_the_most_specific_script_wins_then_priority_then_id(setting: Runtime) -> None:
    await put_script("anyone", text("generic"), priority=0)
    await put_script("queue", text("queue"), appliesTo={"queueIds": ["general"]}, priority=50)
    await put_script("queue-b", text("queue b"), appliesTo={"queueIds": ["general"]}, priority=50)
    await put_script("other-queue", text("x"), appliesTo={"queueIds": ["billing"], "urgency": "urgent"})
    assert (await conversation_script("c-1")).json["scriptId"] == "queue"  # same priority: smaller id
    await put_script("queue-b", text("queue b"), appliesTo={"queueIds": ["general"]}, priority=10)
    assert (await conversation_script("c-1")).json["scriptId"] == "queue-b"  # lower priority
    await put_script(
        "urgent-en",
        text("u"),
        appliesTo={"queueIds": ["general"], "urgency": "urgent", "languages": ["en-GB"]},
    )
    assert (await conversation_script("c-1")).json["scriptId"] == "urgent-en"  # three criteria match


async def test_only_the_assigned_agent_reads_it_and_none_may_apply(setting: Runtime) -> None:
    await put_script("only-billing", text("x"), appliesTo={"queueIds": ["billing"]})
    assert (await conversation_script("c-1")).status == 404  # no script applies
    await put_script("any", text("x"))
    assert (await conversation_script("c-1", OTHER_AGENT)).status == 404
    assert (await conversation_script("nope")).status == 404
    assert (await conversation_script("c-1", SUPERVISOR)).status == 403
    assert (await conversation_script("c-1", token("Patient", patient_id="p-1"))).status == 403
    assert (await conversation_script("c-1")).status == 200


async def test_reading_a_conversation_s_script_is_audited(setting: Runtime) -> None:
    await put_script("any", text("Hello {patient.name}"))
    assert (await conversation_script("c-1")).status == 200
    page = await setting.store.container("audit").query(Query(), partition_key="p-1")
    resources = {(r["actor"], r["resource"], r["action"]) for r in page.items}
    assert ("agent-7", "conversations/c-1/script", "read") in resources
    assert ("agent-7", "patients/p-1", "read") in resources
