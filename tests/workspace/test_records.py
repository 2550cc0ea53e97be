"""Record hygiene through the HTTP edge: merging the provisional record a bot escalation made into
the registered patient (appointments, sign-in links and audit follow; done once: a second merge
changes nothing), and a patient's access log from the audit trail."""

from __future__ import annotations

from typing import Any

import pytest

from shared.conversations.api import bot_key, conversation_id_for
from shared.patients.matching import provisional_patient_id
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, token
from tests.workspace.support import ADMIN, AGENT, SUPERVISOR, all_items, put_patient

BOT = token("Bot.Escalate", sub="bot-1")
KEY = bot_key("dev:bot-1", "bot-conv-9")  # the bot conversation's key, scoped to the calling bot
PROVISIONAL = provisional_patient_id(KEY)
CONVERSATION = conversation_id_for(KEY)
EXTERNAL_PATIENT = token("Patient", sub="ext-oid-1")


async def merge(survivor: str, body: Any, bearer: str = AGENT) -> Answer:
    return await invoke(
        "merge_patient", method="POST", bearer=bearer, json_body=body, route_params={"patientId": survivor}
    )


@pytest.fixture
async def provisional(runtime: Runtime) -> Runtime:
    """A registered patient, and the provisional record an unmatched escalation made, with an
    appointment booked and a patient sign-in linked to it."""
    await put_patient("p-1", givenName="Anna")
    escalation = {
        "botConversationId": "bot-conv-9",
        "patient": {"name": "Anna K"},
        "reason": "Needs a nurse",
        "triage": {"urgency": "routine"},
        "transcript": [],
    }
    answer = await invoke("escalate", method="POST", bearer=BOT, json_body=escalation)
    assert answer.status == 202, answer.json
    provider = {
        "name": "Dr Nowak",
        "specialty": "cardiology",
        "timeZone": "Europe/Warsaw",
        "slotMinutes": 30,
        "weeklyHours": {"mon": [["09:00", "17:00"]]},
    }
    assert (
        await invoke(
            "put_provider",
            method="PUT",
            bearer=ADMIN,
            json_body=provider,
            route_params={"providerId": "dr-nowak"},
        )
    ).status == 201
    booking = {
        "providerId": "dr-nowak",
        "start": "2026-01-12T10:00:00Z",
        "patientId": PROVISIONAL,
        "reason": "Check-up",
    }
    booked = await invoke("book_appointment", method="POST", bearer=AGENT, json_body=booking)
    assert booked.status == 201, booked.json
    code = await invoke(
        "create_link_code", method="POST", bearer=AGENT, route_params={"patientId": PROVISIONAL}
    )
    linked = await invoke(
        "link_me", method="POST", bearer=EXTERNAL_PATIENT, json_body={"code": code.json["code"]}
    )
    assert linked.status == 200, linked.json
    return runtime


async def appointments_of(patient_id: str) -> list[str]:
    answer = await invoke(
        "search_appointments",
        bearer=AGENT,
        params={"patientId": patient_id},
        url=f"http://localhost/api/appointments?patientId={patient_id}",
    )
    assert answer.status == 200, answer.json
    return [item["patientId"] for item in answer.json["items"]]


async def test_a_merge_moves_appointments_links_and_audit_and_points_the_provisional_id_on(
    provisional: Runtime,
) -> None:
    assert await appointments_of(PROVISIONAL) == [PROVISIONAL]
    answer = await merge("p-1", {"from": PROVISIONAL})
    assert answer.status == 200, answer.json
    assert answer.json == {
        "patientId": "p-1",
        "mergedFrom": PROVISIONAL,
        "mergedAt": "2026-01-05T09:00:00.000Z",
        "mergedBy": "agent-7",
        "alreadyMerged": False,
        "conversations": [CONVERSATION],
        "pendingConversations": [],
    }
    assert await appointments_of("p-1") == ["p-1"]
    assert await appointments_of(PROVISIONAL) == []
    staff_view = await invoke("get_patient", bearer=AGENT, route_params={"patientId": PROVISIONAL})
    assert staff_view.json["mergedInto"] == "p-1"
    # The patient's sign-in, linked to the provisional record, now reaches the survivor's.
    mine = await invoke("get_my_profile", bearer=EXTERNAL_PATIENT)
    assert (mine.status, mine.json["givenName"]) == (200, "Anna")
    links = [i for i in await all_items(provisional, "lookups") if i.get("type") == "patient-link"]
    assert [link["patientId"] for link in links] == ["p-1"]
    copied = [
        i for i in await all_items(provisional, "audit") if i["patientId"] == "p-1" and i.get("mergedFrom")
    ]
    assert copied
    assert {i["mergedFrom"] for i in copied} == {PROVISIONAL}
    assert any(i["resource"] == f"patients/{PROVISIONAL}" for i in copied)


async def test_a_merge_moves_the_provisional_record_s_conversations(provisional: Runtime) -> None:
    from shared.conversations.api import conversations

    assert (await merge("p-1", {"from": PROVISIONAL})).status == 200
    doc = await conversations.read(provisional.store, CONVERSATION)
    assert doc.patient_id == "p-1"
    events = [
        i
        for i in await all_items(provisional, "conversations")
        if i.get("type") == "event" and i["eventType"] == "conversation.merged"
    ]
    assert [e["data"] for e in events] == [{"patientId": "p-1", "previousPatientId": PROVISIONAL}]
    lists = {i["list"] for i in await all_items(provisional, "lists") if i["ref"] == CONVERSATION}
    assert lists == {"patient-conversations:p-1", "live-conversations:default"}
    summary = await invoke("patient_summary", bearer=AGENT, route_params={"patientId": "p-1"})
    assert [c["id"] for c in summary.json["openConversations"]] == [CONVERSATION]
    records = await all_items(provisional, "patients")
    (record,) = [r for r in records if r["id"] == PROVISIONAL]
    assert (record.get("mergePending"), record["mergeMoved"]) == (None, {"conversations": [CONVERSATION]})


@pytest.mark.parametrize(
    "at",
    [
        pytest.param(("conversations", "batch", 1), id="moving-the-conversation"),
        pytest.param(("lists", "delete", 2), id="unlisting-it-from-the-provisional"),
    ],
)
async def test_a_merge_that_dies_midway_is_finished_by_merging_again(
    provisional: Runtime, at: tuple[str, str, int]
) -> None:
    """A real worker process dies (os._exit) at a write of the conversations' move."""
    from shared.conversations.api import conversations
    from tests.functions.test_list_crashes import die_at

    call = {
        "name": "merge_patient",
        "roles": ["Agent"],
        "claims": {"sub": "agent-7"},
        "body": {"from": PROVISIONAL},
        "route": {"patientId": "p-1"},
    }
    die_at(provisional, at, call)
    records = await all_items(provisional, "patients")
    (record,) = [r for r in records if r["id"] == PROVISIONAL]
    assert record["mergedInto"] == "p-1"
    assert record["mergePending"] == {"conversations": [CONVERSATION]}
    again = await merge("p-1", {"from": PROVISIONAL})
    assert again.status == 200, again.json
    assert (again.json["conversations"], again.json["pendingConversations"]) == ([CONVERSATION], [])
    assert (await conversations.read(provisional.store, CONVERSATION)).patient_id == "p-1"
    lists = {i["list"] for i in await all_items(provisional, "lists") if i["ref"] == CONVERSATION}
    assert lists == {"patient-conversations:p-1", "live-conversations:default"}
    merged = [
        i
        for i in await all_items(provisional, "conversations")
        if i.get("type") == "event" and i["eventType"] == "conversation.merged"
    ]
    assert len(merged) == 1


async def test_a_merge_twice_changes_nothing_the_second_time(provisional: Runtime) -> None:
    first = await merge("p-1", {"from": PROVISIONAL})
    before = {
        name: await all_items(provisional, name)
        for name in ("patients", "appointments", "lists", "lookups", "conversations")
    }
    audit_before = await all_items(provisional, "audit")
    second = await merge("p-1", {"from": PROVISIONAL}, SUPERVISOR)
    assert second.status == 200
    assert second.json == {**first.json, "alreadyMerged": True}
    for name, items in before.items():
        assert await all_items(provisional, name) == items, name
    audit_after = await all_items(provisional, "audit")
    new = [i for i in audit_after if i not in audit_before]
    assert [(i["patientId"], i["action"], i["actor"]) for i in new] == [("p-1", "read", "super-1")]


@pytest.mark.parametrize(
    ("survivor", "body", "status"),
    [
        ("p-1", {"from": "p-1"}, 400),
        ("p-1", {"from": "nobody"}, 422),
        ("p-1", {}, 400),
        ("p-1", {"from": ""}, 400),
        ("p-1", {"from": PROVISIONAL, "force": True}, 400),
        ("nobody", {"from": PROVISIONAL}, 404),
        ("p-2", {"from": "p-1"}, 409),  # only a provisional record is merged
        (PROVISIONAL, {"from": PROVISIONAL}, 400),
    ],
)
async def test_merges_that_cannot_be_are_refused_and_nothing_changes(
    provisional: Runtime, survivor: str, body: dict[str, Any], status: int
) -> None:
    await put_patient("p-2")
    before = {
        name: await all_items(provisional, name) for name in ("patients", "appointments", "lists", "audit")
    }
    assert (await merge(survivor, body)).status == status
    for name, items in before.items():
        assert await all_items(provisional, name) == items, name


async def test_a_provisional_record_merges_into_one_patient_only(provisional: Runtime) -> None:
    await put_patient("p-2")
    assert (await merge("p-1", {"from": PROVISIONAL})).status == 200
    assert (await merge("p-2", {"from": PROVISIONAL})).status == 409
    assert (await merge(PROVISIONAL, {"from": "p-2"})).status == 404  # merged away: not a survivor


async def test_only_agents_and_supervisors_merge(provisional: Runtime) -> None:
    for bearer in (ADMIN, token("Patient", patient_id="p-1"), token("KnowledgeManager")):
        assert (await merge("p-1", {"from": PROVISIONAL}, bearer)).status == 403


# The access log ---------------------------------------------------------------------------------


async def access_log(patient_id: str, bearer: str = ADMIN, **params: str) -> Answer:
    query = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z", **params}
    url = "http://localhost/api/patients/x/access-log?" + "&".join(f"{k}={v}" for k, v in query.items())
    return await invoke(
        "access_log", bearer=bearer, params=query, url=url, route_params={"patientId": patient_id}
    )


async def test_the_access_log_lists_who_touched_the_record_newest_first_in_pages(
    runtime: Runtime, clock: Any
) -> None:
    await put_patient("p-1")
    for _ in range(3):
        clock.advance(60)
        assert (await invoke("get_patient", bearer=AGENT, route_params={"patientId": "p-1"})).status == 200
    clock.advance(60)  # the log's own reads come later than the window below
    window = {"to": "2026-01-05T09:03:30Z"}
    first = await access_log("p-1", maxItems="2", **window)
    assert first.status == 200, first.json
    assert [(i["actor"], i["action"]) for i in first.json["items"]] == [
        ("agent-7", "read"),
        ("agent-7", "read"),
    ]
    stamps = [i["at"] for i in first.json["items"]]
    assert stamps == sorted(stamps, reverse=True)
    second = await access_log(
        "p-1", maxItems="2", continuationToken=first.json["continuationToken"], **window
    )
    assert [i["action"] for i in second.json["items"]] == ["read", "create"]
    created = {k: v for k, v in second.json["items"][1].items() if k != "correlationId"}
    assert created == {
        "at": "2026-01-05T09:00:00.000Z",
        "actor": "admin-1",
        "roles": ["Administrator", "ClinicalUser"],
        "action": "create",
        "resource": "patients/p-1",
        "outcome": "success",
    }
    assert "continuationToken" not in second.json
    # Reading the log is itself on the log.
    newest = (await access_log("p-1", maxItems="1")).json["items"][0]
    assert newest["resource"] == "patients/p-1/access-log"


async def test_a_window_outside_the_record_s_life_is_empty(runtime: Runtime) -> None:
    await put_patient("p-1")
    answer = await access_log("p-1", **{"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"})
    assert answer.json == {"items": []}


@pytest.mark.parametrize(
    "params",
    [
        {"to": "2026-01-01T00:00:00Z"},
        {"from": "yesterday"},
        {"maxItems": "0"},
        {"maxItems": "201"},
        {"continuationToken": "bm90LWEtdG9rZW4"},
    ],
)
async def test_bad_access_log_queries_are_refused(runtime: Runtime, params: dict[str, str]) -> None:
    assert (await access_log("p-1", **params)).status == 400


async def test_only_administrators_read_the_access_log(runtime: Runtime) -> None:
    for bearer in (AGENT, SUPERVISOR, token("Patient", patient_id="p-1")):
        assert (await access_log("p-1", bearer)).status in (403, 404)
    assert (await access_log("p-1", token("Patient", patient_id="p-1"))).status == 403
