"""The FHIR R4 views, validated with `fhir.resources` (its R4B models: Appointment, Slot and Bundle
are unchanged between R4 and R4B). fhir.resources is a dev dependency: only tests import it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.slot import Slot

from shared.runtime import Runtime
from tests.conftest import invoke, seed_conversation, seed_patients
from tests.functions.test_appointments import (
    AGENT,
    KNOWLEDGE,
    OTHER_PATIENT,
    PATIENT,
    SLOT,
    act,
    all_items,
    book,
    put_provider,
)

ROOT = Path(__file__).resolve().parents[2]


async def test_an_appointment_is_a_valid_r4_appointment(runtime: Runtime) -> None:
    await put_provider()
    await seed_patients(runtime, "p-1")
    await seed_conversation(runtime, "conv-7", "p-1")
    booked = (await book(bearer=AGENT, patientId="p-1", conversationId="conv-7")).json
    answer = await invoke("fhir_appointment", bearer=PATIENT, route_params={"appointmentId": booked["id"]})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/fhir+json"
    resource = Appointment.model_validate(answer.json)
    assert resource.id == booked["id"]
    assert resource.status == "booked"
    assert resource.minutesDuration == 30
    assert resource.slot[0].reference == "Slot/dr-warsaw.20260106T0700Z"
    assert {p.actor.reference for p in resource.participant} == {"Patient/p-1", "Practitioner/dr-warsaw"}
    assert answer.json["start"] == SLOT

    await act("cancel_appointment", booked["id"])
    cancelled = await invoke("fhir_appointment", bearer=AGENT, route_params={"appointmentId": booked["id"]})
    assert Appointment.model_validate(cancelled.json).status == "cancelled"


async def test_an_appointment_carries_the_same_etag_as_the_json_api_and_it_guards_writes(
    runtime: Runtime,
) -> None:
    await put_provider()
    await seed_patients(runtime, "p-1")
    booked = (await book()).json
    route = {"appointmentId": booked["id"]}
    fhir = await invoke("fhir_appointment", bearer=PATIENT, route_params=route)
    plain = await invoke("get_appointment", bearer=PATIENT, route_params=route)
    assert fhir.headers["ETag"] == plain.headers["ETag"]
    assert re.match(r'^"[\x21\x23-\x7e]+"$', fhir.headers["ETag"])
    cancelled = await invoke(
        "cancel_appointment",
        method="POST",
        bearer=PATIENT,
        route_params=route,
        headers={"If-Match": fhir.headers["ETag"]},
    )
    assert cancelled.status == 200, cancelled.json
    after = await invoke("fhir_appointment", bearer=PATIENT, route_params=route)
    assert after.headers["ETag"] == cancelled.headers["ETag"] != fhir.headers["ETag"]


async def test_a_slot_search_is_a_valid_r4_searchset(runtime: Runtime) -> None:
    await put_provider()
    await seed_patients(runtime, "p-1")
    await book()
    answer = await invoke(
        "fhir_slots",
        bearer=PATIENT,
        url="http://localhost/api/fhir/Slot",
        params={"schedule": "Schedule/dr-warsaw", "start": "2026-01-06"},
    )
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/fhir+json"
    bundle = Bundle.model_validate(answer.json)
    assert bundle.type == "searchset"
    slots = [Slot.model_validate(e.resource.model_dump()) for e in bundle.entry]
    assert len(slots) == 16
    assert [(s.status, s.schedule.reference) for s in slots[:2]] == [
        ("busy", "Schedule/dr-warsaw"),
        ("free", "Schedule/dr-warsaw"),
    ]
    assert slots[0].id == "dr-warsaw.20260106T0700Z"
    assert answer.json["entry"][0]["fullUrl"] == "http://localhost/api/fhir/Slot/dr-warsaw.20260106T0700Z"

    busy = await invoke(
        "fhir_slots",
        bearer=AGENT,
        params={"schedule": "dr-warsaw", "start": "ge2026-01-06T07:00:00.000Z", "status": "busy"},
    )
    assert [e["resource"]["start"] for e in busy.json["entry"]] == [SLOT]


async def test_fhir_bad_input_wrong_role_and_wrong_patient(runtime: Runtime) -> None:
    await put_provider()
    await seed_patients(runtime, "p-1")
    booked = (await book()).json
    for params in (
        {"start": "2026-01-06"},
        {"schedule": "Schedule/dr-warsaw"},
        {"schedule": "Schedule/dr-warsaw", "start": "lt2026-01-06"},
        {"schedule": "Schedule/dr warsaw", "start": "2026-01-06"},
        {"schedule": "Schedule/dr-warsaw", "start": "ge2026-01-06T07:00:00"},
    ):
        answer = await invoke("fhir_slots", bearer=PATIENT, params=params)
        assert answer.status == 400, params
    params = {"schedule": "Schedule/dr-nobody", "start": "2026-01-06"}
    assert (await invoke("fhir_slots", bearer=PATIENT, params=params)).status == 404
    route = {"appointmentId": booked["id"]}
    assert (await invoke("fhir_appointment", bearer=OTHER_PATIENT, route_params=route)).status == 404
    assert (await invoke("fhir_appointment", bearer=KNOWLEDGE, route_params=route)).status == 403
    assert (await invoke("fhir_appointment", route_params=route)).status == 401
    reads = [a for a in await all_items(runtime, "audit") if a["action"] == "read"]
    assert reads == []  # refused reads are not accesses


def test_fhir_resources_stays_out_of_the_production_import_path() -> None:
    probe = """
import sys, asyncio
import function_app
import functions.fhir, shared.scheduling.booking, shared.scheduling.model
assert not [m for m in sys.modules if m.startswith('fhir.')], 'fhir.resources imported'
print('ok')
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.dumps(result.stdout).startswith('"ok')
