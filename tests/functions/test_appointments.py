"""Booking, rescheduling, cancelling and checking in appointments through the registered functions,
on the real embedded store and bus."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, seed_conversation, seed_patients, stored_items, token

ADMIN = token("Administrator", sub="admin-1")
AGENT = token("Agent", sub="agent-1")
SUPERVISOR = token("Supervisor", sub="supervisor-1")
PATIENT = token("Patient", sub="patient-sub-1", patient_id="p-1")
OTHER_PATIENT = token("Patient", sub="patient-sub-2", patient_id="p-2")
KNOWLEDGE = token("KnowledgeManager", sub="km-1")

# The manual clock starts on Monday 2026-01-05 09:00Z; Warsaw is UTC+1 in January.
WARSAW: dict[str, Any] = {
    "name": "Dr. Test Warsaw",
    "specialty": "cardiology",
    "timeZone": "Europe/Warsaw",
    "slotMinutes": 30,
    "weeklyHours": {d: [["08:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "exceptions": [
        {"date": "2026-01-07", "hours": []},
        {"date": "2026-01-08", "hours": [["10:00", "11:00"]]},
    ],
    "bookingRules": {"maxDaysAhead": 30, "minNoticeMinutes": 60},
}
SLOT = "2026-01-06T07:00:00.000Z"  # Tuesday 08:00 in Warsaw
OTHER_SLOT = "2026-01-06T07:30:00.000Z"


async def put_provider(provider_id: str = "dr-warsaw", body: dict[str, Any] | None = None) -> Answer:
    return await invoke(
        "put_provider",
        method="PUT",
        bearer=ADMIN,
        json_body=WARSAW if body is None else body,
        route_params={"providerId": provider_id},
    )


async def book(
    bearer: str = PATIENT,
    start: str = SLOT,
    provider_id: str = "dr-warsaw",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Answer:
    body = {"providerId": provider_id, "start": start, "reason": "Chest pain follow-up", **extra}
    return await invoke("book_appointment", method="POST", bearer=bearer, json_body=body, headers=headers)


async def act(name: str, appointment_id: str, bearer: str = PATIENT, body: Any = None) -> Answer:
    return await invoke(
        name, method="POST", bearer=bearer, json_body=body, route_params={"appointmentId": appointment_id}
    )


async def all_items(runtime: Runtime, container: str) -> list[dict[str, Any]]:
    return await stored_items(runtime, container)


# Keyed by the runtime's data directory (unique per test), never by id(): a later test's runtime
# can be given a freed object's id and would start reading after the earlier test's position.
_READ_UP_TO: dict[str, str] = {}


async def drain_events(runtime: Runtime) -> list[tuple[str, dict[str, Any]]]:
    """The appointment events written since the last call, in write order, as the relay publishes
    them: (`<type>:<appointment id>`, the message body), read from the outbox's change feed."""
    from shared.kernel.outbox import event_message

    store: Any = runtime.store
    key = str(runtime.settings.data_dir)
    batch = await store.read_changes("appointments", after=_READ_UP_TO.get(key), max_items=1000)
    _READ_UP_TO[key] = batch.continuation
    found = []
    for item in batch.items:
        message = event_message(item)
        if message is not None:
            body = json.loads(message.body)
            found.append((f"{body['type']}:{body['aggregateId']}", body))
    return found


async def free_starts(bearer: str = PATIENT, day: str = "2026-01-06") -> list[str]:
    answer = await invoke(
        "provider_slots",
        bearer=bearer,
        route_params={"providerId": "dr-warsaw"},
        params={"from": day, "to": day},
    )
    assert answer.status == 200, answer.json
    return [s["start"] for s in answer.json["slots"]]


@pytest.fixture
async def provider(runtime: Runtime) -> None:
    assert (await put_provider()).status == 201
    await seed_patients(runtime, "p-1", "p-2", "p-3", "p-9")
    await seed_conversation(runtime, "conv-42", "p-9")


async def test_a_patient_books_their_own_slot(runtime: Runtime, provider: None) -> None:
    answer = await book()
    assert answer.status == 201, answer.json
    body = answer.json
    assert body["status"] == "booked"
    assert body["providerId"] == "dr-warsaw"
    assert body["patientId"] == "p-1"
    assert (body["start"], body["end"]) == (SLOT, "2026-01-06T07:30:00.000Z")
    assert answer.headers["Location"] == f"/api/appointments/{body['id']}"
    assert "conversationId" not in body
    assert SLOT not in await free_starts()

    read = await invoke("get_appointment", bearer=PATIENT, route_params={"appointmentId": body["id"]})
    assert read.status == 200
    assert read.json == body

    slots = await all_items(runtime, "slots")
    assert [(s["id"], s["status"], s["appointmentId"]) for s in slots] == [
        ("dr-warsaw.20260106T0700Z", "busy", body["id"])
    ]
    assert await drain_events(runtime) == [
        (
            f"appointment.booked:{body['id']}",
            {
                "id": f"{body['id']}:1.1",
                "type": "appointment.booked",
                "aggregateId": body["id"],
                "version": 1,
                "at": "2026-01-05T09:00:00.000Z",
                "data": {
                    "providerId": "dr-warsaw",
                    "patientId": "p-1",
                    "status": "booked",
                    "start": SLOT,
                    "end": "2026-01-06T07:30:00.000Z",
                },
            },
        )
    ]


async def test_an_agent_books_for_a_patient_in_a_conversation(runtime: Runtime, provider: None) -> None:
    answer = await book(bearer=AGENT, patientId="p-9", conversationId="conv-42")
    assert answer.status == 201, answer.json
    assert answer.json["patientId"] == "p-9"
    assert answer.json["conversationId"] == "conv-42"
    assert answer.json["bookedBy"] == "agent-1"
    # ... and any staff member acts on it.
    read = await invoke(
        "get_appointment", bearer=SUPERVISOR, route_params={"appointmentId": answer.json["id"]}
    )
    assert read.status == 200


async def test_a_taken_slot_is_409_and_writes_no_second_appointment(runtime: Runtime, provider: None) -> None:
    assert (await book()).status == 201
    second = await book(bearer=AGENT, patientId="p-2")
    assert second.status == 409
    assert second.headers["Content-Type"].startswith("application/problem+json")
    assert second.json["type"] == "urn:psc:problem:conflict"
    assert len(await all_items(runtime, "appointments")) == 1


@pytest.mark.parametrize(
    ("start", "why"),
    [
        ("2026-01-06T07:10:00.000Z", "off the slot grid"),
        ("2026-01-06T11:00:00.000Z", "12:00 Warsaw: the lunch break"),
        ("2026-01-06T16:00:00.000Z", "17:00 Warsaw: after hours"),
        ("2026-01-07T07:00:00.000Z", "a closed date (exception)"),
        ("2026-01-08T07:00:00.000Z", "other hours that day (10:00-11:00 only)"),
        ("2026-01-10T09:00:00.000Z", "Saturday"),
        ("2026-01-05T09:30:00.000Z", "inside the minimum notice"),
        ("2026-01-05T08:00:00.000Z", "in the past"),
        ("2026-02-05T08:00:00.000Z", "beyond maxDaysAhead"),
    ],
)
async def test_outside_hours_or_rules_is_409(runtime: Runtime, provider: None, start: str, why: str) -> None:
    answer = await book(start=start)
    assert answer.status == 409, why
    assert await all_items(runtime, "appointments") == []
    assert await all_items(runtime, "slots") == []


async def test_the_exception_hours_are_bookable(runtime: Runtime, provider: None) -> None:
    assert (await book(start="2026-01-08T09:00:00.000Z")).status == 201  # 10:00 Warsaw


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": "2026-01-06T08:00:00"}, "body.start"),  # no offset
        ({"start": "tomorrow"}, "body.start"),
        ({"providerId": "bad id/x"}, "body.providerId"),
        ({"reason": ""}, "body.reason"),
        ({"patientId": "has spaces"}, "body.patientId"),
        ({"surprise": True}, "body.surprise"),
    ],
)
async def test_bad_booking_input_is_400_and_writes_nothing(
    runtime: Runtime, provider: None, change: dict[str, Any], field: str
) -> None:
    answer = await book(**change)
    assert answer.status == 400
    assert field in [e["field"] for e in answer.json["errors"]]
    for container in ("appointments", "slots", "lookups"):
        assert await all_items(runtime, container) == []
    assert [a for a in await all_items(runtime, "audit") if a["resource"].startswith("appointments")] == []


async def test_staff_must_name_the_patient(runtime: Runtime, provider: None) -> None:
    answer = await book(bearer=AGENT)
    assert answer.status == 400
    assert answer.json["errors"][0]["field"] == "body.patientId"
    assert await all_items(runtime, "appointments") == []


async def test_an_unknown_provider_in_a_booking_is_422(runtime: Runtime, provider: None) -> None:
    answer = await book(provider_id="dr-nobody")
    assert answer.status == 422
    assert answer.json["errors"] == [{"field": "body.providerId", "message": "is not a known provider"}]


async def test_wrong_roles_are_403(runtime: Runtime, provider: None) -> None:
    assert (await book(bearer=KNOWLEDGE)).status == 403
    assert (await book(bearer=ADMIN, patientId="p-1")).status == 403
    booked = await book()
    appointment_id = booked.json["id"]
    for name, body in (("set_appointment_status", {"status": "arrived"}),):
        assert (await act(name, appointment_id, bearer=PATIENT, body=body)).status == 403
    assert (await invoke("my_appointments", bearer=AGENT)).status == 403
    assert (await act("cancel_appointment", appointment_id, bearer=KNOWLEDGE)).status == 403
    assert len(await all_items(runtime, "appointments")) == 1


async def test_another_patients_appointment_is_404(runtime: Runtime, provider: None) -> None:
    booked = await book()
    appointment_id = booked.json["id"]
    params = {"appointmentId": appointment_id}
    stranger = await invoke("get_appointment", bearer=OTHER_PATIENT, route_params=params)
    missing = await invoke("get_appointment", bearer=OTHER_PATIENT, route_params={"appointmentId": "nope"})
    assert stranger.status == missing.status == 404
    assert stranger.json["title"] == missing.json["title"]
    assert (await act("cancel_appointment", appointment_id, bearer=OTHER_PATIENT)).status == 404
    moved = await act(
        "reschedule_appointment", appointment_id, bearer=OTHER_PATIENT, body={"start": OTHER_SLOT}
    )
    assert moved.status == 404
    # Booking in someone else's name is as if that patient did not exist.
    assert (await book(bearer=OTHER_PATIENT, start=OTHER_SLOT, patientId="p-1")).status == 404
    # Nothing changed.
    still = await invoke("get_appointment", bearer=PATIENT, route_params=params)
    assert (still.json["status"], still.json["start"]) == ("booked", SLOT)
    assert len(await all_items(runtime, "slots")) == 1


async def test_an_idempotency_key_replays_the_same_appointment(runtime: Runtime, provider: None) -> None:
    first = await book(headers={"Idempotency-Key": "portal-click-1"})
    again = await book(headers={"Idempotency-Key": "portal-click-1"})
    assert first.status == again.status == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(await all_items(runtime, "appointments")) == 1
    assert [m for m, _ in await drain_events(runtime)] == [f"appointment.booked:{first.json['id']}"]
    lookup = (await all_items(runtime, "lookups"))[0]
    assert lookup["id"].startswith("appt-idem:")
    assert "portal-click-1" not in json.dumps(lookup)  # hashed with the caller's sub
    assert lookup["ttl"] == 24 * 3600

    other = await book(start=OTHER_SLOT, headers={"Idempotency-Key": "portal-click-1"})
    assert other.status == 409  # the key was used for another request
    # The same key from another caller is another key.
    stranger = await book(
        bearer=AGENT, start=OTHER_SLOT, patientId="p-3", headers={"Idempotency-Key": "portal-click-1"}
    )
    assert stranger.status == 201


async def test_a_replay_outlives_the_booking_rules(
    runtime: Runtime, clock: ManualClock, provider: None
) -> None:
    first = await book(start="2026-01-05T10:30:00.000Z", headers={"Idempotency-Key": "k-late"})
    assert first.status == 201
    clock.advance(minutes=45)  # now inside the minimum notice of that slot
    again = await book(start="2026-01-05T10:30:00.000Z", headers={"Idempotency-Key": "k-late"})
    assert again.status == 201
    assert again.json["id"] == first.json["id"]


async def test_a_bad_idempotency_key_is_400(runtime: Runtime, provider: None) -> None:
    answer = await book(headers={"Idempotency-Key": "with space"})
    assert answer.status == 400
    assert await all_items(runtime, "appointments") == []


async def test_reschedule_takes_the_new_slot_then_frees_the_old(runtime: Runtime, provider: None) -> None:
    booked = (await book()).json
    moved = await act("reschedule_appointment", booked["id"], body={"start": OTHER_SLOT})
    assert moved.status == 200, moved.json
    assert (moved.json["start"], moved.json["end"]) == (OTHER_SLOT, "2026-01-06T08:00:00.000Z")
    assert moved.json["id"] == booked["id"]
    free = await free_starts()
    assert SLOT in free
    assert OTHER_SLOT not in free
    assert [s["id"] for s in await all_items(runtime, "slots")] == ["dr-warsaw.20260106T0730Z"]
    events = await drain_events(runtime)
    assert [m for m, _ in events] == [
        f"appointment.booked:{booked['id']}",
        f"appointment.rescheduled:{booked['id']}",
    ]
    assert events[1][1]["data"]["previousStart"] == SLOT
    assert events[1][1]["data"]["start"] == OTHER_SLOT

    # A retry of the same move changes nothing and writes no second event.
    again = await act("reschedule_appointment", booked["id"], body={"start": OTHER_SLOT})
    assert again.status == 200
    assert again.json == moved.json
    assert await drain_events(runtime) == []


async def test_reschedule_onto_a_taken_slot_is_409_and_keeps_the_booking(
    runtime: Runtime, provider: None
) -> None:
    mine = (await book()).json
    assert (await book(bearer=AGENT, start=OTHER_SLOT, patientId="p-2")).status == 201
    before = await invoke("get_appointment", bearer=PATIENT, route_params={"appointmentId": mine["id"]})
    answer = await act("reschedule_appointment", mine["id"], body={"start": OTHER_SLOT})
    assert answer.status == 409
    after = await invoke("get_appointment", bearer=PATIENT, route_params={"appointmentId": mine["id"]})
    assert after.json == before.json
    stored = await runtime.store.container("appointments").read(mine["id"], mine["id"])
    assert "pending" not in stored
    assert {s["id"] for s in await all_items(runtime, "slots")} == {
        "dr-warsaw.20260106T0700Z",
        "dr-warsaw.20260106T0730Z",
    }


@pytest.mark.parametrize(
    "start", ["2026-01-06T07:10:00.000Z", "2026-01-07T07:00:00.000Z", "2026-01-05T09:30:00.000Z"]
)
async def test_reschedule_outside_hours_or_rules_is_409(runtime: Runtime, provider: None, start: str) -> None:
    booked = (await book()).json
    answer = await act("reschedule_appointment", booked["id"], body={"start": start})
    assert answer.status == 409
    assert len(await all_items(runtime, "slots")) == 1


async def test_bad_reschedule_input_is_400(runtime: Runtime, provider: None) -> None:
    booked = (await book()).json
    for body in ({"start": "2026-01-06T08:00:00"}, {}, {"start": OTHER_SLOT, "providerId": "x"}):
        answer = await act("reschedule_appointment", booked["id"], body=body)
        assert answer.status == 400
    assert (await act("reschedule_appointment", "bad id!", body={"start": OTHER_SLOT})).status == 400


async def test_cancel_frees_the_slot(runtime: Runtime, provider: None) -> None:
    booked = (await book()).json
    answer = await act("cancel_appointment", booked["id"])
    assert answer.status == 200
    assert answer.json["status"] == "cancelled"
    assert await all_items(runtime, "slots") == []
    assert SLOT in await free_starts()
    # Cancelling again is a no-op; the slot is bookable by someone else.
    assert (await act("cancel_appointment", booked["id"])).status == 200
    assert (await book(bearer=AGENT, patientId="p-2")).status == 201
    events = [m for m, _ in await drain_events(runtime)]
    assert events[:2] == [f"appointment.booked:{booked['id']}", f"appointment.cancelled:{booked['id']}"]
    assert len(events) == 3
    # A cancelled appointment cannot move or check in.
    assert (await act("reschedule_appointment", booked["id"], body={"start": OTHER_SLOT})).status == 409
    status = await act("set_appointment_status", booked["id"], bearer=AGENT, body={"status": "arrived"})
    assert status.status == 409


async def test_agents_check_patients_in_and_illegal_transitions_are_409(
    runtime: Runtime, clock: ManualClock, provider: None
) -> None:
    booked = (await book()).json

    async def mark(status: str) -> Answer:
        return await act("set_appointment_status", booked["id"], bearer=AGENT, body={"status": status})

    assert (await mark("noshow")).status == 409  # not before it starts
    clock.set(clock.now().replace(day=6, hour=7, minute=5))
    arrived = await mark("arrived")
    assert arrived.status == 200
    assert arrived.json["status"] == "arrived"
    assert (await mark("noshow")).status == 409
    assert (await act("cancel_appointment", booked["id"])).status == 409
    assert (
        await act("reschedule_appointment", booked["id"], body={"start": "2026-01-06T08:30:00.000Z"})
    ).status == 409
    assert (await mark("fulfilled")).json["status"] == "fulfilled"
    assert (await mark("arrived")).status == 409
    assert (await mark("cancelled")).status == 400  # not a status agents set by this route
    assert len(await all_items(runtime, "slots")) == 1  # a visit that happened keeps its slot


async def test_a_noshow_writes_its_event(runtime: Runtime, clock: ManualClock, provider: None) -> None:
    booked = (await book()).json
    clock.set(clock.now().replace(day=6, hour=8))
    answer = await act("set_appointment_status", booked["id"], bearer=SUPERVISOR, body={"status": "noshow"})
    assert answer.status == 200
    events = await drain_events(runtime)
    assert events[-1][0] == f"appointment.noshow:{booked['id']}"
    assert events[-1][1]["data"]["status"] == "noshow"


async def test_my_appointments_lists_only_mine(runtime: Runtime, provider: None) -> None:
    late = (await book(start=OTHER_SLOT)).json
    early = (await book()).json
    await book(bearer=AGENT, start="2026-01-06T08:00:00.000Z", patientId="p-2")
    answer = await invoke("my_appointments", bearer=PATIENT)
    assert answer.status == 200
    assert [a["id"] for a in answer.json["items"]] == [early["id"], late["id"]]
    paged = await invoke("my_appointments", bearer=PATIENT, params={"limit": "1"})
    assert len(paged.json["items"]) == 1
    assert paged.json["continuationToken"]
    rest = await invoke(
        "my_appointments",
        bearer=PATIENT,
        params={"limit": "1", "continuationToken": paged.json["continuationToken"]},
    )
    assert [a["id"] for a in rest.json["items"]] == [late["id"]]
    other = await invoke("my_appointments", bearer=OTHER_PATIENT)
    assert [a["patientId"] for a in other.json["items"]] == ["p-2"]
    assert (await invoke("my_appointments", bearer=PATIENT, params={"limit": "0"})).status == 400


async def test_every_access_is_audited(runtime: Runtime, clock: ManualClock, provider: None) -> None:
    booked = (await book(headers={"x-correlation-id": "corr-book-0001"})).json
    clock.advance(1)
    await invoke("get_appointment", bearer=AGENT, route_params={"appointmentId": booked["id"]})
    clock.advance(1)
    await act("reschedule_appointment", booked["id"], body={"start": OTHER_SLOT})
    clock.advance(1)
    await act("cancel_appointment", booked["id"], bearer=AGENT)
    clock.advance(1)
    await invoke("my_appointments", bearer=PATIENT)
    page = await runtime.store.container("audit").query(Query(), partition_key="p-1")
    records = sorted(page.items, key=lambda r: r["at"])
    assert [(r["action"], r["actor"], r["resource"]) for r in records] == [
        ("create", "patient-sub-1", f"appointments/{booked['id']}"),
        ("read", "agent-1", f"appointments/{booked['id']}"),
        ("update", "patient-sub-1", f"appointments/{booked['id']}"),
        ("update", "agent-1", f"appointments/{booked['id']}"),
        ("list", "patient-sub-1", "me/appointments"),
    ]
    assert records[0]["correlationId"] == "corr-book-0001"


async def test_a_change_and_its_event_need_no_bus_and_a_retry_writes_no_second_event(
    runtime: Runtime, provider: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("bus unreachable")

    monkeypatch.setattr(runtime.bus, "send", down)  # the relay publishes later; the request never sends
    booked = await book(headers={"Idempotency-Key": "k-1"})
    assert booked.status == 201
    appointment_id = booked.json["id"]
    assert (await book(headers={"Idempotency-Key": "k-1"})).status == 201
    assert (await act("cancel_appointment", appointment_id)).status == 200
    assert (await act("cancel_appointment", appointment_id)).status == 200
    assert [m for m, _ in await drain_events(runtime)] == [
        f"appointment.booked:{appointment_id}",
        f"appointment.cancelled:{appointment_id}",
    ]


async def test_a_stale_hold_of_a_dead_booking_is_reclaimed(
    runtime: Runtime, clock: ManualClock, provider: None
) -> None:
    # A booking that died between taking the slot and writing the appointment.
    await runtime.store.container("slots").create(
        {
            "id": "dr-warsaw.20260106T0700Z",
            "type": "slot",
            "providerId": "dr-warsaw",
            "start": SLOT,
            "end": "2026-01-06T07:30:00.000Z",
            "appointmentId": "dead-booking",
            "status": "busy-tentative",
            "heldAt": "2026-01-05T09:00:00.000Z",
        }
    )
    assert (await book()).status == 409  # still in flight as far as anyone can tell
    clock.advance(minutes=2)
    answer = await book()
    assert answer.status == 201
    tombstone = await runtime.store.container("appointments").read("dead-booking", "dead-booking")
    assert tombstone["status"] == "entered-in-error"  # the dead writer can never create it now
    missing = await invoke("get_appointment", bearer=AGENT, route_params={"appointmentId": "dead-booking"})
    assert missing.status == 404


async def test_the_openapi_document_lists_the_scheduling_routes(runtime: Runtime) -> None:
    paths = (await invoke("openapi")).json["paths"]
    assert set(paths["/api/appointments"]) == {"get", "post"}
    assert {"409", "400", "403"} <= set(paths["/api/appointments"]["post"]["responses"])
    assert "/api/appointments/{appointmentId}/status" in paths
    assert "/api/me/appointments" in paths
    names = [p["name"] for p in paths["/api/providers/{providerId}/slots"]["get"]["parameters"]]
    assert {"providerId", "from", "to"} <= set(names)


async def test_no_phi_reaches_the_logs(
    runtime: Runtime, provider: None, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from shared.kernel.observability import install_logging

    caplog.set_level(logging.DEBUG)
    install_logging(logging.DEBUG)
    reason = "Rash after penicillin"
    booked = (await book(reason=reason)).json
    await invoke("get_appointment", bearer=AGENT, route_params={"appointmentId": booked["id"]})
    await act("cancel_appointment", booked["id"])
    logging.getLogger("psc.careless").warning("reason was %s", reason)
    text = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert reason not in text
    assert booked["id"] in text  # ids are logged
