"""The HTTP edge's input rules, from the side of what stays accepted: the bad-input corpus
(tests/hardening) proves what is refused; these prove the rules do not refuse what clients may
send, that no route can skip the id check, and that a refusal never repeats the input."""

from __future__ import annotations

import json
import re
from typing import Any

import azure.functions as func
import pytest

from shared.auth.principal import Role
from shared.web.api import EXTERNAL_ID_PARAM, ID_PARAM, ROUTES, Api, Call, Reply, allow
from tests.hardening.world import ADMIN, AGENT, PATIENT, SUPERVISOR, World, bearer, world

__all__ = ["world"]

PROVIDER_ID_PARAM = "shared.scheduling.model:check_provider_id"
BOOKING = {"providerId": "dr-warsaw", "reason": "Jan Nowak's chest pain"}


async def send(w: World, method: str, path: str, who: str, body: Any = None, raw: bytes | None = None) -> Any:
    headers = bearer(who)
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if content is not None:
        headers["Content-Type"] = "application/json"
    return await w.client.request(method, path, headers=headers, content=content)


@pytest.mark.parametrize(
    "raw", [None, b"", b"  \r\n", b"{}", b" { } "], ids=["none", "empty", "blank", "{}", "{ }"]
)
async def test_an_action_without_a_body_takes_none_or_an_empty_object(
    world: World, raw: bytes | None
) -> None:
    answer = await send(world, "POST", f"/api/appointments/{world.appointment_id}/cancel", PATIENT, raw=raw)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"


async def test_query_strings_are_parsed_into_their_types(world: World) -> None:
    board = await send(world, "GET", "/api/supervisor/conversations?maxItems=50", SUPERVISOR)
    assert board.status_code == 200, board.text
    listed = await send(world, "GET", "/api/providers?limit=1&specialty=cardiology", PATIENT)
    assert listed.status_code == 200, listed.text


async def test_names_in_any_script_ids_with_at_and_colon_and_multiline_messages_are_accepted(
    world: World,
) -> None:
    hebrew = "\u05e9\u05e8\u05d4 \u05dc\u05d5\u05d9\u200f"  # a right-to-left name with its mark
    answer = await send(world, "PUT", "/api/patients/p:2@clinic", ADMIN, {"name": hebrew})
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == hebrew
    message = await send(
        world, "POST", "/api/conversations/c-1/messages", AGENT, {"text": "Line one\r\n\tLine two"}
    )
    assert message.status_code == 201, message.text
    agent = await send(
        world, "PUT", "/api/manage/agents/jan.nowak@example.org", ADMIN, {"name": "Jan", "queues": []}
    )
    assert agent.status_code == 201, agent.text


async def test_a_booking_made_in_the_patients_own_conversation_keeps_it(world: World) -> None:
    body = {"providerId": "dr-warsaw", "start": "2026-01-06T08:00:00Z", "reason": "Follow-up"}
    answer = await send(
        world, "POST", "/api/appointments", AGENT, {**body, "patientId": "p-1", "conversationId": "c-1"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["conversationId"] == "c-1"


@pytest.mark.parametrize(
    ("method", "path", "who", "body"),
    [
        ("PUT", "/api/patients/p-1", ADMIN, {"name": "Jan Nowak\u0000", "email": "jan.nowak@example.org"}),
        ("PUT", "/api/manage/agents/jan.nowak%2Fexample.org", ADMIN, {"name": "Jan"}),
        ("POST", "/api/appointments", PATIENT, {**BOOKING, "start": "9999-12-31T23:00:00-05:00"}),
        ("PUT", "/api/manage/agents/a-9", ADMIN, '{"name": "Jan Nowak", "name": "Ewa Nowak"}'),
        ("GET", "/api/providers?specialty=Jan%00Nowak", PATIENT, None),
    ],
)  # fmt: skip
async def test_a_refusal_names_the_field_and_never_repeats_the_input(
    world: World, method: str, path: str, who: str, body: Any
) -> None:
    raw = body.encode() if isinstance(body, str) else None
    answer = await send(world, method, path, who, None if raw else body, raw=raw)
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["type"] == "urn:psc:problem:validation"
    assert problem["errors"]
    assert all(e["field"] and e["message"] for e in problem["errors"])
    for secret in ("Jan", "Nowak", "9999", "chest"):
        assert secret not in json.dumps(problem), problem


def test_every_path_parameter_of_every_route_is_checked() -> None:
    import function_app  # noqa: F401 - registers the routes

    for spec in ROUTES:
        assert [name for name, _ in spec.params] == re.findall(r"\{\*?(\w+)", spec.route), spec.route
        assert all(":" in checker for _, checker in spec.params), spec.route
    checkers = {(spec.route, name): checker for spec in ROUTES for name, checker in spec.params}
    assert checkers["manage/providers/{providerId}", "providerId"] == PROVIDER_ID_PARAM
    assert checkers["patients/{patientId}", "patientId"] == ID_PARAM


def test_a_route_cannot_override_a_parameter_it_does_not_have() -> None:
    api = Api(func.Blueprint(), tag="test")
    with pytest.raises(ValueError, match="no parameter"):
        api.route(
            "things/{thingId}", "GET", access=allow(Role.AGENT), summary="x", params={"thingid": ID_PARAM}
        )


async def test_an_external_id_in_a_path_is_any_printable_text(runtime: Any) -> None:
    from shared.web.api import dispatch

    seen: list[str] = []

    async def handler(call: Call) -> Reply:
        seen.append(call.route("botConversationId"))
        return Reply(body={"ok": True})

    api = Api(func.Blueprint(), tag="test")
    api.route(
        "bot/conversations/{botConversationId}/probe",
        "GET",
        access=allow(Role.BOT),
        summary="probe",
        params={"botConversationId": EXTERNAL_ID_PARAM},
    )(handler)
    spec = next(s for s in ROUTES if s.route == "bot/conversations/{botConversationId}/probe")
    ROUTES.remove(spec)
    from tests.conftest import token

    for value, status in (("19:a b/c?d#e@thread.v2", 200), ("a\nb", 400), ("x" * 513, 400)):
        request = func.HttpRequest(
            "GET",
            "http://localhost/api/bot/conversations/x/probe",
            headers={"Authorization": "Bearer " + token("Bot.Escalate", sub="bot-1")},
            route_params={"botConversationId": value},
            body=b"",
        )
        assert (await dispatch(spec, handler, request)).status_code == status, value
    assert seen == ["19:a b/c?d#e@thread.v2"]


# Free-slot pages --------------------------------------------------------------------------------


async def pages(w: World, query: str, who: str = PATIENT) -> list[list[str]]:
    found: list[list[str]] = []
    token = None
    while True:
        suffix = f"&continuationToken={token}" if token else ""
        answer = await send(w, "GET", f"/api/providers/dr-warsaw/slots?{query}{suffix}", who)
        assert answer.status_code == 200, answer.text
        found.append([s["start"] for s in answer.json()["slots"]])
        token = answer.json().get("continuationToken")
        if not token:
            return found


async def test_free_slots_come_in_pages_that_add_up_to_the_whole_window(world: World) -> None:
    whole = await pages(world, "from=2026-01-06&to=2026-01-30&maxItems=1000")
    assert len(whole) == 1
    paged = await pages(world, "from=2026-01-06&to=2026-01-30&maxItems=7")
    assert all(len(page) == 7 for page in paged[:-1])
    assert [start for page in paged for start in page] == whole[0]
    assert "2026-01-06T07:00:00Z" not in whole[0]  # the world's booked slot


async def test_the_default_page_is_200_slots_within_the_62_day_window(world: World) -> None:
    five_minutes = {
        "name": "Dr. Five",
        "specialty": "triage",
        "timeZone": "Europe/Warsaw",
        "slotMinutes": 5,
        "weeklyHours": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "bookingRules": {"maxDaysAhead": 120},
    }
    assert (await send(world, "PUT", "/api/manage/providers/dr-five", ADMIN, five_minutes)).status_code == 201
    answer = await send(world, "GET", "/api/providers/dr-five/slots?from=2026-01-06&to=2026-03-08", PATIENT)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["slots"]) == 200
    assert answer.json()["continuationToken"]
    assert len(answer.content) < 20_000
    too_long = await send(world, "GET", "/api/providers/dr-five/slots?from=2026-01-06&to=2026-03-09", PATIENT)
    assert too_long.status_code == 400


async def test_a_token_only_continues_its_own_search(world: World) -> None:
    first = await send(
        world, "GET", "/api/providers/dr-warsaw/slots?from=2026-01-06&to=2026-01-09&maxItems=2", PATIENT
    )
    token = first.json()["continuationToken"]
    other = await send(
        world,
        "GET",
        f"/api/providers/dr-warsaw/slots?from=2026-01-06&to=2026-01-10&continuationToken={token}",
        PATIENT,
    )
    assert other.status_code == 400
    assert other.json()["errors"] == [
        {"field": "query.continuationToken", "message": "is not a continuation of this search"}
    ]
