"""Teams consults through the HTTP edge, against a recording Workflows endpoint on loopback: team
configuration (secrets never returned), an agent's consult (the card posted, no patient details),
a provider's reply (HMAC accepted and refused, stored first, matched by its code, applied once),
status and events, and the sweep's expiry."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.conversations.model import Status
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query, where
from shared.kernel.messages import OutgoingMessage
from shared.kernel.outbox import event_message
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, token
from tests.consults.workflows import OTHER_TOKEN, TOKEN, Workflows, activity, sign
from tests.workspace.support import (
    AGENT,
    INTEGRATION,
    OTHER_AGENT,
    SUPERVISOR,
    all_items,
    held_conversation,
    put_agent,
    put_patient,
)

PROVIDER = {
    "name": "Dr Nowak",
    "specialty": "cardiology",
    "timeZone": "Europe/Warsaw",
    "slotMinutes": 30,
    "weeklyHours": {"mon": [["09:00", "17:00"]]},
}


@pytest.fixture
async def workflows() -> AsyncIterator[Workflows]:
    endpoint = Workflows()
    await endpoint.start()
    yield endpoint
    await endpoint.close()


Events = Callable[[], Awaitable[list[OutgoingMessage]]]


@pytest.fixture
def events(runtime: Runtime) -> Events:
    """The consult events written with their changes (through the outbox, in conversation c-1's
    partition), as the relay publishes them to the topic."""

    async def written() -> list[OutgoingMessage]:
        page = await runtime.store.container("conversations").query(
            Query((where("type", "=", "event"),)), partition_key="c-1"
        )
        items = sorted(page.items, key=lambda item: (item["version"], item["n"]))
        messages = [event_message(item) for item in items if item["eventType"].startswith("consult.")]
        return [m for m in messages if m is not None]

    return written


@pytest.fixture
async def teams(runtime: Runtime, workflows: Workflows) -> Runtime:
    runtime.settings = runtime.settings.model_copy(update={"teams_workflow_hosts": "127.0.0.1"})
    answer = await invoke(
        "put_provider",
        method="PUT",
        bearer=token("Administrator"),
        json_body=PROVIDER,
        route_params={"providerId": "dr-nowak"},
    )
    assert answer.status in (200, 201), answer.json
    return runtime


async def put_team(team_id: str, body: dict[str, Any], bearer: str = INTEGRATION, **headers: str) -> Answer:
    return await invoke(
        "put_team",
        method="PUT",
        bearer=bearer,
        json_body=body,
        headers=headers or None,
        route_params={"teamId": team_id},
    )


def workflow_url(workflows: Workflows) -> str:
    assert workflows._server is not None
    return f"http://127.0.0.1:{workflows._server.port}/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t"


@pytest.fixture
async def cardiology(teams: Runtime, workflows: Workflows) -> Runtime:
    body = {"name": "Cardiology", "workflowUrl": workflow_url(workflows), "outgoingToken": TOKEN}
    answer = await put_team("cardiology", {**body, "providerIds": ["dr-nowak"]})
    assert answer.status == 201, answer.json
    await put_patient(
        "p-1", givenName="Anna", email="anna.k@example.org", phone="+48601234567", dateOfBirth="1980-02-03"
    )
    await put_agent()
    await held_conversation(teams, "c-1", "p-1", urgency="urgent", specialty="cardiology")
    return teams


async def consult(body: dict[str, Any], conversation_id: str = "c-1", bearer: str = AGENT) -> Answer:
    return await invoke(
        "create_consult",
        method="POST",
        bearer=bearer,
        json_body=body,
        route_params={"conversationId": conversation_id},
    )


async def reply(payload: dict[str, Any], *, token_: str | None = TOKEN, team_id: str | None = None) -> Answer:
    raw = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if token_ is not None:
        headers["Authorization"] = sign(raw, token_)
    params = {"teamId": team_id} if team_id else {}
    url = "http://localhost/api/teams/consult-replies" + (f"?teamId={team_id}" if team_id else "")
    return await invoke("consult_reply", method="POST", body=raw, headers=headers, params=params, url=url)


QUESTION = "Is 5 mg amlodipine safe with ankle swelling?"


# Teams --------------------------------------------------------------------------------------------


async def test_a_team_is_configured_and_its_secrets_are_never_returned(
    teams: Runtime, workflows: Workflows
) -> None:
    url = workflow_url(workflows)
    created = await put_team("cardiology", {"name": "Cardiology", "workflowUrl": url, "outgoingToken": TOKEN})
    assert created.status == 201
    assert created.json == {
        "id": "cardiology",
        "name": "Cardiology",
        "providerIds": [],
        "webhookName": "PSC",
        "workflowHost": "127.0.0.1",
        "outgoingToken": "own",
        "updatedAt": created.json["updatedAt"],
    }
    renamed = await put_team("cardiology", {"name": "Cardio"}, **{"If-Match": created.headers["ETag"]})
    assert renamed.status == 200
    assert renamed.json["outgoingToken"] == "own"  # secrets kept when left out
    read = await invoke("get_team", bearer=INTEGRATION, route_params={"teamId": "cardiology"})
    assert read.json["name"] == "Cardio"
    stored = json.dumps(await all_items(teams, "teams")) + json.dumps(read.json) + json.dumps(renamed.json)
    assert "s3cr3t" not in stored
    assert TOKEN not in stored
    assert (
        await teams.secrets.get(
            next(i for i in await all_items(teams, "teams") if i["id"] == "team:cardiology")["workflowSecret"]
        )
        == url
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "T"}, 400),  # a new team needs its Workflows URL
        ({"name": "T", "workflowUrl": "https://evil.example.org/workflows/x"}, 400),
        ({"name": "T", "workflowUrl": "http://prod-1.westeurope.logic.azure.com/workflows/x"}, 400),
        ({"name": "T", "workflowUrl": "https://user:pw@prod-1.westeurope.logic.azure.com/x"}, 400),
        ({"name": "T", "workflowUrl": "https://10.0.0.5/workflows/x"}, 400),
        (
            {
                "name": "T",
                "workflowUrl": "https://prod-1.westeurope.logic.azure.com/x",
                "outgoingToken": "not base64!!!!!!!",
            },
            400,
        ),
        (
            {
                "name": "T",
                "workflowUrl": "https://prod-1.westeurope.logic.azure.com/x",
                "providerIds": ["nobody"],
            },
            422,
        ),
        ({"name": "T", "workflowUrl": "https://prod-1.westeurope.logic.azure.com/x", "secret": "x"}, 400),
    ],
)
async def test_bad_teams_are_refused_and_nothing_is_written(
    teams: Runtime, body: dict[str, Any], status: int
) -> None:
    answer = await put_team("t", body)
    assert answer.status == status, answer.json
    assert await all_items(teams, "teams") == []


async def test_power_automate_hosts_are_accepted_as_workflows_urls(teams: Runtime) -> None:
    for url in (
        "https://prod-23.westeurope.logic.azure.com:443/workflows/1/triggers/manual/paths/invoke?sig=x",
        "https://default1234.56.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/1",
    ):
        assert (await put_team("t", {"name": "T", "workflowUrl": url})).status in (200, 201), url


async def test_only_integration_admins_configure_teams(teams: Runtime) -> None:
    body = {"name": "T", "workflowUrl": "https://prod-1.westeurope.logic.azure.com/x"}
    for bearer in (token("Administrator"), AGENT, SUPERVISOR):
        assert (await put_team("t", body, bearer)).status == 403
    assert (await invoke("get_team", bearer=AGENT, route_params={"teamId": "t"})).status == 403
    assert (await invoke("get_team", bearer=INTEGRATION, route_params={"teamId": "t"})).status == 404


# Consults -----------------------------------------------------------------------------------------


async def test_a_consult_posts_the_card_with_no_patient_details(
    cardiology: Runtime, workflows: Workflows, events: Events
) -> None:
    answer = await consult({"providerId": "dr-nowak", "question": QUESTION})
    assert answer.status == 201, answer.json
    code = answer.json["id"]
    assert answer.json["status"] == "sent"
    assert answer.json["teamId"] == "cardiology"
    (payload,) = workflows.seen
    assert workflows.paths == ["/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t"]
    card = payload["attachments"][0]["content"]
    assert card["version"] == "1.5"
    text = json.dumps(card)
    assert code in text
    assert QUESTION in text
    for detail in (
        "Anna",
        "Kowalska",
        "anna.k@example.org",
        "601234567",
        "1980-02-03",
        "c-1",
        "p-1",
        "forgot",
    ):
        assert detail not in text, detail
    (sent,) = await events()
    assert (sent.subject, sent.message_id, sent.session_id) == ("consult.sent", "c-1:1.1", "c-1")
    assert json.loads(sent.body)["data"] == {
        "consultId": code.replace("-", ""),
        "teamId": "cardiology",
        "agentId": "agent-7",
        "providerId": "dr-nowak",
        "status": "sent",
    }
    assert QUESTION not in sent.body.decode()


async def test_a_question_naming_the_patient_is_refused_and_nothing_is_sent(
    cardiology: Runtime, workflows: Workflows
) -> None:
    for question in (
        "Anna reports ankle swelling",
        "Patient Kowalska, dose?",
        "born 03.02.1980, dose?",
        "reach her at anna.k@example.org",
        "call +48 601 234 567",
    ):
        answer = await consult({"teamId": "cardiology", "question": question})
        assert answer.status == 400, question
        assert answer.json["errors"][0]["field"] == "body.question"
    assert workflows.seen == []
    assert await all_items(cardiology, "consults") == []


@pytest.mark.parametrize(
    "body",
    [
        {"question": QUESTION},
        {"teamId": "cardiology", "providerId": "dr-nowak", "question": QUESTION},
        {"teamId": "cardiology", "question": ""},
        {"teamId": "cardiology"},
        {"teamId": "cardiology", "question": QUESTION, "urgent": True},
    ],
)
async def test_bad_consults_are_refused(
    cardiology: Runtime, workflows: Workflows, body: dict[str, Any]
) -> None:
    assert (await consult(body)).status == 400
    assert workflows.seen == []


async def test_consults_name_known_teams_and_providers_with_a_team(
    cardiology: Runtime, workflows: Workflows
) -> None:
    assert (await consult({"teamId": "nope", "question": QUESTION})).status == 422
    assert (await consult({"providerId": "nobody", "question": QUESTION})).status == 422
    await put_team("cardiology", {"name": "Cardiology", "providerIds": []})
    assert (await consult({"providerId": "dr-nowak", "question": QUESTION})).status == 422
    assert workflows.seen == []


async def test_only_the_assigned_agent_of_a_live_conversation_consults(cardiology: Runtime) -> None:
    body = {"teamId": "cardiology", "question": QUESTION}
    assert (await consult(body, bearer=OTHER_AGENT)).status == 404
    assert (await consult(body, "c-404")).status == 404
    assert (await consult(body, bearer=SUPERVISOR)).status == 403
    assert (await consult(body, bearer=token("Patient", patient_id="p-1"))).status == 403
    await held_conversation(cardiology, "c-2", "p-1", status=Status.CLOSED)
    assert (await consult(body, "c-2")).status == 409


async def test_a_card_teams_refuses_leaves_no_consult(cardiology: Runtime, workflows: Workflows) -> None:
    workflows.status = 500
    answer = await consult({"teamId": "cardiology", "question": QUESTION})
    assert answer.status == 503
    assert await all_items(cardiology, "consults") == []


# Replies ------------------------------------------------------------------------------------------


@pytest.fixture
async def sent(cardiology: Runtime) -> str:
    answer = await consult({"teamId": "cardiology", "question": QUESTION})
    assert answer.status == 201
    code: str = answer.json["id"]
    return code


async def read_consult(code: str, bearer: str = AGENT) -> Answer:
    return await invoke(
        "get_consult", bearer=bearer, route_params={"conversationId": "c-1", "consultId": code}
    )


async def test_a_signed_reply_is_matched_by_its_code_and_answers_the_consult(
    sent: str, cardiology: Runtime, events: Events
) -> None:
    before = await read_consult(sent)
    assert before.headers["ETag"] == (await read_consult(sent, SUPERVISOR)).headers["ETag"]
    answer = await reply(activity(f"{sent.lower()} Yes, 5 mg is fine; recheck in a week."))
    assert answer.status == 200, answer.json
    assert answer.json == {
        "type": "message",
        "text": f"Thank you: your answer to consult {sent} reached the agent.",
    }
    read = await read_consult(sent)
    assert read.json["status"] == "answered"
    assert re.match(r'^"[\x21\x23-\x7e]+"$', read.headers["ETag"])
    assert read.headers["ETag"] != before.headers["ETag"]  # the reply changed the consult
    assert [(r["fromName"], r["text"]) for r in read.json["replies"]] == [
        ("Dr Nowak", f"{sent.lower()} Yes, 5 mg is fine; recheck in a week.")
    ]
    assert [m.subject for m in await events()] == ["consult.sent", "consult.answered"]


async def test_a_redelivered_reply_is_answered_again_and_applied_once(sent: str, cardiology: Runtime) -> None:
    payload = activity(f"{sent} Fine.")
    first = await reply(payload)
    before = await all_items(cardiology, "consults")
    again = await reply(payload)
    assert again.json == first.json
    assert await all_items(cardiology, "consults") == before
    assert len((await read_consult(sent)).json["replies"]) == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer abc", "HMAC", "HMAC not*base64", "HMAC " + "A" * 44],
)
async def test_a_reply_without_the_right_signature_is_refused_and_nothing_is_stored(
    sent: str, cardiology: Runtime, authorization: str | None
) -> None:
    raw = json.dumps(activity(f"{sent} Fine.")).encode()
    headers = {
        "Content-Type": "application/json",
        **({"Authorization": authorization} if authorization else {}),
    }
    answer = await invoke("consult_reply", method="POST", body=raw, headers=headers)
    assert answer.status == 401
    assert [i for i in await all_items(cardiology, "consults") if i["type"] == "teams-reply"] == []


async def test_a_signature_over_another_body_or_with_another_token_is_refused(
    sent: str, cardiology: Runtime
) -> None:
    raw = json.dumps(activity(f"{sent} Fine.")).encode()
    tampered = raw.replace(b"Fine", b"Nope")
    headers = {"Content-Type": "application/json", "Authorization": sign(raw)}
    assert (await invoke("consult_reply", method="POST", body=tampered, headers=headers)).status == 401
    assert (await reply(activity(f"{sent} Fine."), token_=OTHER_TOKEN)).status == 401
    assert (await reply(activity(f"{sent} Fine."), team_id="unknown-team")).status == 401


async def test_the_default_token_signs_for_teams_without_their_own(
    teams: Runtime, workflows: Workflows
) -> None:
    teams.settings = teams.settings.model_copy(update={"teams_outgoing_token": OTHER_TOKEN})
    await put_team("general", {"name": "General", "workflowUrl": workflow_url(workflows)})
    await put_patient("p-1")
    await put_agent()
    await held_conversation(teams, "c-1", "p-1")
    code = (await consult({"teamId": "general", "question": QUESTION})).json["id"]
    assert (await reply(activity(f"{code} ok"), token_=TOKEN)).status == 401
    assert (await reply(activity(f"{code} ok"), token_=OTHER_TOKEN)).status == 200
    assert (await read_consult(code)).json["status"] == "answered"


async def test_a_reply_from_another_team_or_without_a_code_matches_nothing(
    sent: str, cardiology: Runtime, workflows: Workflows
) -> None:
    await put_team(
        "billing", {"name": "Billing", "workflowUrl": workflow_url(workflows), "outgoingToken": OTHER_TOKEN}
    )
    other = await reply(activity(f"{sent} I answer for billing", "a-2"), token_=OTHER_TOKEN)
    assert other.status == 200
    assert "No open consult" in other.json["text"]
    nothing = await reply(activity("thanks all", "a-3"))
    assert "No open consult" in nothing.json["text"]
    assert (await read_consult(sent)).json["status"] == "sent"
    stored = {
        i["activity"]: i["status"]
        for i in await all_items(cardiology, "consults")
        if i["type"] == "teams-reply"
    }
    assert stored == {"a-2": "unmatched", "a-3": "unmatched"}


async def test_a_consult_is_read_by_its_agent_or_a_supervisor(sent: str, cardiology: Runtime) -> None:
    assert (await read_consult(sent)).status == 200
    assert (await read_consult(sent, SUPERVISOR)).status == 200
    assert (await read_consult(sent, OTHER_AGENT)).status == 404
    assert (await read_consult("ZZZZ-ZZZZ")).status == 404
    assert (await read_consult(sent, token("Patient", patient_id="p-1"))).status == 403


# The sweep ----------------------------------------------------------------------------------------


async def test_an_unanswered_consult_expires_and_a_late_answer_still_lands(
    sent: str, cardiology: Runtime, clock: ManualClock, events: Events
) -> None:
    from functions.consults import _intake, _teams
    from shared.consults.api import Consults

    consults = Consults(cardiology.store, cardiology.bus, clock, _teams(cardiology), cardiology.workflows)
    assert await consults.expire_due(clock.now()) == 0
    clock.advance(timedelta(hours=25).total_seconds())
    assert await consults.expire_due(clock.now()) == 1
    assert await consults.expire_due(clock.now()) == 0  # a second run changes nothing
    assert (await read_consult(sent)).json["status"] == "expired"
    await reply(activity(f"{sent} sorry, late"))
    assert (await read_consult(sent)).json["status"] == "answered"
    assert [m.subject for m in await events()] == ["consult.sent", "consult.expired", "consult.answered"]
    assert await _intake(cardiology).retry_stuck(clock.now()) == 0


async def test_a_reply_stored_but_never_processed_is_picked_up_by_the_sweep(
    sent: str, cardiology: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.consults import _intake
    from shared.consults.replies import ReplyIntake

    async def crash(self: ReplyIntake, reply: Any) -> Any:
        raise RuntimeError("worker died")

    monkeypatch.setattr(ReplyIntake, "process", crash)
    assert (await reply(activity(f"{sent} fine"))).status == 500
    monkeypatch.undo()
    assert (await read_consult(sent)).json["status"] == "sent"
    assert await _intake(cardiology).retry_stuck(clock.now()) == 0  # not yet a minute old
    clock.advance(61)
    assert await _intake(cardiology).retry_stuck(clock.now()) == 1
    assert (await read_consult(sent)).json["status"] == "answered"
