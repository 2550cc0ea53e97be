"""The unified patient view through the HTTP edge: what staff and the patient see (clinical fields
only for ClinicalUser, another patient's view 404), audited, and what it costs the store (point
reads and single-partition queries only)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bench.counting import CountingStore, summary
from shared.conversations.api import Status, conversations
from shared.kernel.clock import ManualClock
from shared.runtime import Runtime, use_runtime
from tests.conftest import Answer, invoke, token
from tests.workspace.support import (
    ADMIN,
    AGENT,
    SUPERVISOR,
    all_items,
    deliver_patient_lists,
    held_conversation,
    put_patient,
)

BOT = token("Bot.Escalate", sub="bot-1")
CLINICAL_AGENT = token("Agent", "ClinicalUser", sub="agent-9")
PATIENT = token("Patient", sub="oid-p1", patient_id="p-1")
OTHER_PATIENT = token("Patient", sub="oid-p2", patient_id="p-2")


async def staff_summary(patient_id: str, bearer: str = AGENT) -> Answer:
    return await invoke("patient_summary", bearer=bearer, route_params={"patientId": patient_id})


async def my_summary(bearer: str = PATIENT) -> Answer:
    return await invoke("my_summary", bearer=bearer)


async def book(start: str, patient_id: str = "p-1") -> str:
    booking = {"providerId": "dr-nowak", "start": start, "patientId": patient_id, "reason": "Chest pain"}
    booked = await invoke("book_appointment", method="POST", bearer=AGENT, json_body=booking)
    assert booked.status == 201, booked.json
    appointment_id: str = booked.json["id"]
    return appointment_id


@pytest.fixture
async def patient(runtime: Runtime, clock: ManualClock) -> dict[str, Any]:
    """p-1 with clinical fields, two appointments with Dr Nowak (Warsaw) a week apart, one of them
    past by now, an open conversation from a bot escalation and an older closed one."""
    await put_patient(
        "p-1", givenName="Anna", dateOfBirth="1980-04-02", clinicalNotes="Allergic to penicillin"
    )
    await put_patient("p-2", name="Someone Else")
    provider = {
        "name": "Dr Nowak",
        "specialty": "cardiology",
        "timeZone": "Europe/Warsaw",
        "slotMinutes": 30,
        "weeklyHours": {"mon": [["09:00", "17:00"]]},
    }
    put = await invoke(
        "put_provider",
        method="PUT",
        bearer=ADMIN,
        json_body=provider,
        route_params={"providerId": "dr-nowak"},
    )
    assert put.status == 201, put.json
    past = await book("2026-01-12T10:00:00Z")
    upcoming = await book("2026-01-19T10:00:00Z")
    closed = await held_conversation(runtime, "c-old", "p-1", status=Status.CLOSED)
    await conversations.list_for_patient(runtime.store, closed, "p-1")
    clock.advance(days=8)  # 2026-01-13 09:00 UTC: one appointment behind, one ahead
    escalation = {
        "botConversationId": "bot-conv-1",
        "patient": {"id": "p-1"},
        "reason": "Needs a nurse",
        "triage": {"urgency": "urgent", "specialty": "cardiology"},
        "transcript": [],
    }
    answer = await invoke("escalate", method="POST", bearer=BOT, json_body=escalation)
    assert answer.status == 202, answer.json
    await deliver_patient_lists(runtime)  # the relay and the patient-conversations consumer
    return {"past": past, "upcoming": upcoming, "open": answer.json["conversationId"]}


async def test_staff_see_profile_appointments_with_provider_local_times_and_conversations(
    patient: dict[str, Any],
) -> None:
    answer = await staff_summary("p-1")
    assert answer.status == 200, answer.json
    view = answer.json
    assert view["patient"]["name"] == "Anna Maria Kowalska"
    assert view["patient"]["consent"] == {"sms": False, "email": False}
    assert [a["id"] for a in view["upcomingAppointments"]] == [patient["upcoming"]]
    assert view["upcomingAppointments"][0] == {
        "id": patient["upcoming"],
        "status": "booked",
        "providerId": "dr-nowak",
        "providerName": "Dr Nowak",
        "start": "2026-01-19T10:00:00.000Z",
        "end": "2026-01-19T10:30:00.000Z",
        "timeZone": "Europe/Warsaw",
        "localStart": "2026-01-19T11:00:00+01:00",
        "localEnd": "2026-01-19T11:30:00+01:00",
    }
    assert [a["id"] for a in view["recentAppointments"]] == [patient["past"]]
    assert [(c["id"], c["status"], c["urgency"]) for c in view["openConversations"]] == [
        (patient["open"], "waiting", "urgent")
    ]
    assert [(c["id"], c["status"]) for c in view["recentConversations"]] == [("c-old", "closed")]
    assert view["notifications"] == view["surveyAnswers"] == []
    assert view["at"] == "2026-01-13T09:00:00.000Z"


async def test_clinical_fields_only_for_clinical_staff(patient: dict[str, Any]) -> None:
    plain = (await staff_summary("p-1", AGENT)).json["patient"]
    clinical = (await staff_summary("p-1", CLINICAL_AGENT)).json["patient"]
    supervisor = (await staff_summary("p-1", SUPERVISOR)).json["patient"]
    assert "dateOfBirth" not in {k for k, v in plain.items() if v is not None}
    assert plain.get("clinicalNotes") is None
    assert supervisor.get("clinicalNotes") is None
    assert (clinical["dateOfBirth"], clinical["clinicalNotes"]) == ("1980-04-02", "Allergic to penicillin")


async def test_a_patient_sees_their_own_view_without_clinical_or_agent_fields(
    patient: dict[str, Any],
) -> None:
    mine = await my_summary()
    assert mine.status == 200, mine.json
    by_id = await staff_summary("p-1", PATIENT)
    assert by_id.status == 200
    for view in (mine.json, by_id.json):
        assert view["patient"].get("dateOfBirth") is None
        assert view["patient"].get("clinicalNotes") is None
        assert [a["id"] for a in view["upcomingAppointments"]] == [patient["upcoming"]]
        (conversation,) = view["openConversations"]
        assert set(conversation) == {"id", "status", "createdAt", "updatedAt", "lastSeq"}


async def test_another_patient_s_view_is_not_found(patient: dict[str, Any]) -> None:
    assert (await staff_summary("p-1", OTHER_PATIENT)).status == 404
    assert (await staff_summary("p-404")).status == 404
    own = await my_summary(OTHER_PATIENT)
    assert own.status == 200
    assert own.json["upcomingAppointments"] == own.json["openConversations"] == []


@pytest.mark.parametrize("bearer", [ADMIN, token("KnowledgeManager"), token("IntegrationAdmin")])
async def test_other_roles_are_refused(patient: dict[str, Any], bearer: str) -> None:
    assert (await staff_summary("p-1", bearer)).status == 403
    assert (await my_summary(AGENT)).status == 403


async def test_a_bad_patient_id_is_a_problem(runtime: Runtime) -> None:
    answer = await staff_summary("not an id!")
    assert answer.status == 400
    assert answer.headers["Content-Type"].startswith("application/problem+json")


async def test_every_read_of_the_view_is_audited(runtime: Runtime, patient: dict[str, Any]) -> None:
    before = await all_items(runtime, "audit")
    await staff_summary("p-1")
    await my_summary()
    new = [i for i in await all_items(runtime, "audit") if i not in before]
    assert sorted((i["actor"], i["action"], i["resource"]) for i in new) == [
        ("agent-7", "read", "patients/p-1/summary"),
        ("oid-p1", "read", "patients/p-1/summary"),
    ]
    denied = await staff_summary("p-1", OTHER_PATIENT)
    assert denied.status == 404


async def test_the_view_costs_six_point_reads_five_single_partition_queries_and_one_audit_write(
    runtime: Runtime, patient: dict[str, Any]
) -> None:
    """1 patient, 2 appointments, 1 provider (read once for both), 2 conversations; the upcoming
    and recent appointment entries and the conversation entries (3 queries of `lists`, one
    partition each); the sent notifications and the survey answers (2 queries of the patient's
    partition of `notifications`); the audit record. No cross-partition query."""
    counting = CountingStore(runtime.store)
    with use_runtime(dataclasses.replace(runtime, store=counting)):
        counting.take()
        assert (await staff_summary("p-1")).status == 200
        counts = counting.take()
    assert summary(counts) == {
        "point": 7,  # 6 reads + the audit record
        "query.in-partition": 5,
        "query.cross-partition": 0,
        "batch": 0,
    }, counts
    assert counts["patients:point.read"] == 1
    assert counts["appointments:point.read"] == 2
    assert counts["providers:point.read"] == 1
    assert counts["conversations:point.read"] == 2
    assert counts["lists:query.in-partition"] == 3
    assert counts["notifications:query.in-partition"] == 2
    assert counts["audit:point.create"] == 1


# The patient-conversations consumer ----------------------------------------------------------------


async def test_a_new_conversation_is_listed_under_its_patient_by_its_first_waiting_event(
    runtime: Runtime,
) -> None:
    await put_patient("p-1")
    escalation = {
        "botConversationId": "bot-conv-2",
        "patient": {"id": "p-1"},
        "reason": "Question",
        "triage": {"urgency": "routine"},
        "transcript": [],
    }
    answer = await invoke("escalate", method="POST", bearer=BOT, json_body=escalation)
    assert answer.status == 202, answer.json
    assert (await staff_summary("p-1")).json["openConversations"] == []  # not delivered yet
    assert await deliver_patient_lists(runtime) == 1
    listed = (await staff_summary("p-1")).json["openConversations"]
    assert [c["id"] for c in listed] == [answer.json["conversationId"]]


async def test_redelivery_of_every_message_changes_nothing(runtime: Runtime, patient: dict[str, Any]) -> None:
    before = await all_items(runtime, "lists")
    assert await deliver_patient_lists(runtime) >= 1
    assert await all_items(runtime, "lists") == before


async def test_other_events_and_later_waits_are_acknowledged_and_ignored(runtime: Runtime) -> None:
    await held_conversation(runtime, "c-9", "p-1")
    for envelope in (
        {"type": "conversation.offered", "aggregateId": "c-9", "data": {}},
        {"type": "conversation.waiting", "aggregateId": "c-9", "data": {"first": False}},
        {"type": "conversation.waiting", "aggregateId": "c-404", "data": {"first": True}},
        {"type": "conversation.waiting", "data": {"first": True}},
    ):
        assert await conversations.list_from_event(runtime.store, envelope) is False
    assert await all_items(runtime, "lists") == []
