"""The patient registry through the registered functions, on the real embedded store."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.kernel.observability import install_logging
from shared.runtime import Runtime
from tests.conftest import invoke, token

PROFILE: dict[str, Any] = {
    "name": "Alice Kowalska",
    "language": "pl",
    "timeZone": "Europe/Warsaw",
    "email": "alice.kowalska@example.org",
    "phone": "+48 601 234 567",
    "preferredChannel": "sms",
    "consent": {"sms": True, "email": False},
    "quietHours": {"start": "21:00", "end": "08:00"},
}
PATIENT = token("Patient", sub="patient-sub-1", patient_id="p-1")
OTHER_PATIENT = token("Patient", sub="patient-sub-2", patient_id="p-2")
AGENT = token("Agent", sub="agent-1")
CLINICAL_AGENT = token("Agent", "ClinicalUser", sub="agent-2")
KNOWLEDGE = token("KnowledgeManager", sub="km-1")


async def put_profile(bearer: str = PATIENT, body: Any = None, **kw: Any) -> Any:
    return await invoke(
        "put_my_profile", method="PUT", bearer=bearer, json_body=PROFILE if body is None else body, **kw
    )


async def all_items(runtime: Runtime, container: str) -> list[dict[str, Any]]:
    page = await runtime.store.container(container).query_cross_partition(Query(), max_items=1000)
    return page.items


async def test_a_patient_creates_reads_and_replaces_their_profile(runtime: Runtime) -> None:
    created = await put_profile()
    assert created.status == 201
    assert created.json["phone"] == "+48601234567"  # normalised to E.164
    assert created.headers["ETag"]

    read = await invoke("get_my_profile", bearer=PATIENT)
    assert read.status == 200
    assert read.json == created.json
    assert read.headers["ETag"] == created.headers["ETag"]

    changed = await put_profile(body={**PROFILE, "language": "en"})
    assert changed.status == 200
    assert changed.json["language"] == "en"
    assert changed.headers["ETag"] != created.headers["ETag"]


async def test_a_profile_that_does_not_exist_is_404(runtime: Runtime) -> None:
    answer = await invoke("get_my_profile", bearer=PATIENT)
    assert answer.status == 404
    assert answer.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timeZone": "Mars/Olympus"}, "body.timeZone"),
        ({"timeZone": "../../etc/passwd"}, "body.timeZone"),
        ({"phone": "12345"}, "body.phone"),
        ({"email": "not-an-email"}, "body.email"),
        ({"language": "english please"}, "body.language"),
        ({"quietHours": {"start": "25:00", "end": "08:00"}}, "body.quietHours.start"),
        ({"preferredChannel": "pigeon"}, "body.preferredChannel"),
        ({"consent": {"sms": "maybe"}}, "body.consent.sms"),
        ({"unknownField": 1}, "body.unknownField"),
        ({"name": ""}, "body.name"),
        ({"phone": None}, "body"),  # preferredChannel sms needs a phone
    ],
)
async def test_bad_profile_input_is_a_400_naming_the_field_and_writes_nothing(
    runtime: Runtime, change: dict[str, Any], field: str
) -> None:
    answer = await put_profile(body={**PROFILE, **change})
    assert answer.status == 400
    problem = answer.json
    assert problem["type"] == "urn:psc:problem:validation"
    assert problem["status"] == 400
    assert field in [e["field"] for e in problem["errors"]]
    assert await all_items(runtime, "patients") == []
    assert await all_items(runtime, "audit") == []


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400),
        (b"", {"Content-Type": "application/json"}, 400),
        (b'{"name": "x"}', {"Content-Type": "text/plain"}, 415),
        (b'{"name": "' + b"x" * (256 * 1024) + b'"}', {"Content-Type": "application/json"}, 413),
    ],
)
async def test_malformed_bodies_get_a_problem_and_write_nothing(
    runtime: Runtime, body: bytes, headers: dict[str, str], status: int
) -> None:
    answer = await invoke("put_my_profile", method="PUT", bearer=PATIENT, body=body, headers=headers)
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json["status"] == status
    assert await all_items(runtime, "patients") == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer " + token("Patient", patient_id="p-1", ttl_seconds=-3600),  # expired past the skew
    ],
)
async def test_missing_or_invalid_tokens_are_401(runtime: Runtime, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = await invoke("get_my_profile", headers=headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_token_signed_with_another_secret_is_401(runtime: Runtime) -> None:
    from shared.auth.dev_tokens import issue_dev_token

    forged = issue_dev_token("another-secret-0123456789abcdef-xyz", sub="x", roles=["Administrator"])
    answer = await invoke("get_patient", bearer=forged, route_params={"patientId": "p-1"})
    assert answer.status == 401


async def test_the_wrong_role_is_403(runtime: Runtime) -> None:
    assert (await invoke("get_my_profile", bearer=AGENT)).status == 403
    assert (await put_profile(bearer=AGENT)).status == 403
    answer = await invoke("get_patient", bearer=KNOWLEDGE, route_params={"patientId": "p-1"})
    assert answer.status == 403
    assert answer.json["type"] == "urn:psc:problem:forbidden"
    assert await all_items(runtime, "patients") == []


async def test_a_patient_token_without_patient_id_cannot_use_profile_routes(runtime: Runtime) -> None:
    answer = await invoke("get_my_profile", bearer=token("Patient", sub="s"))
    assert answer.status == 403


async def test_another_patients_record_is_404_not_403(runtime: Runtime) -> None:
    await put_profile()
    answer = await invoke("get_patient", bearer=OTHER_PATIENT, route_params={"patientId": "p-1"})
    assert answer.status == 404
    missing = await invoke("get_patient", bearer=OTHER_PATIENT, route_params={"patientId": "p-404"})
    assert missing.status == 404
    assert answer.json["title"] == missing.json["title"]  # indistinguishable from absence
    own = await invoke("get_patient", bearer=PATIENT, route_params={"patientId": "p-1"})
    assert own.status == 200
    assert "dateOfBirth" not in own.json


async def test_patients_cannot_write_through_the_staff_route(runtime: Runtime) -> None:
    answer = await invoke(
        "put_patient", method="PUT", bearer=PATIENT, json_body=PROFILE, route_params={"patientId": "p-1"}
    )
    assert answer.status == 403


async def test_clinical_fields_are_only_for_clinical_users(runtime: Runtime) -> None:
    record = {**PROFILE, "dateOfBirth": "1980-02-03", "clinicalNotes": "Penicillin allergy"}
    denied = await invoke(
        "put_patient", method="PUT", bearer=AGENT, json_body=record, route_params={"patientId": "p-1"}
    )
    assert denied.status == 403
    assert await all_items(runtime, "patients") == []

    created = await invoke(
        "put_patient",
        method="PUT",
        bearer=CLINICAL_AGENT,
        json_body=record,
        route_params={"patientId": "p-1"},
    )
    assert created.status == 201
    assert created.json["dateOfBirth"] == "1980-02-03"

    plain = await invoke("get_patient", bearer=AGENT, route_params={"patientId": "p-1"})
    assert plain.status == 200
    assert "dateOfBirth" not in plain.json
    assert "clinicalNotes" not in plain.json

    # A non-clinical update of the profile keeps the clinical fields it cannot see.
    updated = await invoke(
        "put_patient",
        method="PUT",
        bearer=AGENT,
        json_body={**PROFILE, "language": "en"},
        route_params={"patientId": "p-1"},
    )
    assert updated.status == 200
    clinical = await invoke("get_patient", bearer=CLINICAL_AGENT, route_params={"patientId": "p-1"})
    assert clinical.json["language"] == "en"
    assert clinical.json["clinicalNotes"] == "Penicillin allergy"


async def test_a_bad_patient_id_is_a_400(runtime: Runtime) -> None:
    answer = await invoke("get_patient", bearer=AGENT, route_params={"patientId": "bad id/with slash"})
    assert answer.status == 400
    assert answer.json["errors"][0]["field"] == "patientId"


async def test_if_match_protects_against_lost_updates(runtime: Runtime) -> None:
    first = await put_profile()
    etag = first.headers["ETag"]
    assert (await put_profile(body={**PROFILE, "language": "de"}, headers={"If-Match": etag})).status == 200
    stale = await put_profile(body={**PROFILE, "language": "fr"}, headers={"If-Match": etag})
    assert stale.status == 412
    assert stale.json["type"] == "urn:psc:problem:precondition-failed"
    assert (await invoke("get_my_profile", bearer=PATIENT)).json["language"] == "de"


async def test_if_match_on_a_record_that_does_not_exist_is_412(runtime: Runtime) -> None:
    answer = await put_profile(headers={"If-Match": '"whatever"'})
    assert answer.status == 412
    assert await all_items(runtime, "patients") == []


async def test_concurrent_writers_never_drop_each_others_fields(runtime: Runtime) -> None:
    record = {**PROFILE, "dateOfBirth": "1980-02-03", "clinicalNotes": "note 0"}
    await invoke(
        "put_patient",
        method="PUT",
        bearer=CLINICAL_AGENT,
        json_body=record,
        route_params={"patientId": "p-1"},
    )

    async def patient_edit(i: int) -> int:
        return (await put_profile(body={**PROFILE, "name": f"Alice {i}"})).status

    async def clinician_edit(i: int) -> int:
        answer = await invoke(
            "put_patient",
            method="PUT",
            bearer=CLINICAL_AGENT,
            json_body={**PROFILE, "clinicalNotes": f"note {i}"},
            route_params={"patientId": "p-1"},
        )
        return answer.status

    statuses = await asyncio.gather(
        *(patient_edit(i) for i in range(10)), *(clinician_edit(i) for i in range(1, 11))
    )
    assert statuses == [200] * 20
    final = await invoke("get_patient", bearer=CLINICAL_AGENT, route_params={"patientId": "p-1"})
    assert final.json["dateOfBirth"] == "1980-02-03"  # never lost by a concurrent profile write
    assert final.json["clinicalNotes"].startswith("note ")


async def test_every_read_and_change_is_audited(runtime: Runtime, clock: ManualClock) -> None:
    await put_profile(headers={"x-correlation-id": "corr-create-0001"})
    clock.advance(1)
    await invoke("get_my_profile", bearer=PATIENT, headers={"x-correlation-id": "corr-read-0001"})
    clock.advance(1)
    await invoke("get_patient", bearer=AGENT, route_params={"patientId": "p-1"})
    clock.advance(1)
    await invoke(
        "put_patient", method="PUT", bearer=AGENT, json_body=PROFILE, route_params={"patientId": "p-1"}
    )
    page = await runtime.store.container("audit").query(Query(order_by=(("at", False),)), partition_key="p-1")
    records = page.items
    assert [(r["action"], r["actor"]) for r in records] == [
        ("create", "patient-sub-1"),
        ("read", "patient-sub-1"),
        ("read", "agent-1"),
        ("update", "agent-1"),
    ]
    first = records[0]
    assert first["roles"] == ["Patient"]
    assert first["resource"] == "patients/p-1"
    assert first["patientId"] == "p-1"
    assert first["correlationId"] == "corr-create-0001"
    assert first["at"].endswith("Z")
    assert records[1]["correlationId"] == "corr-read-0001"


async def test_an_unexpected_error_is_a_500_with_only_a_correlation_id(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.patients import registry as patients

    secret = "hunter" + "2"  # built at run time, so the traceback's source lines cannot show it

    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"database password is {secret} for {PROFILE['name']}")

    monkeypatch.setattr(patients.PatientRegistry, "read", explode)
    caplog.set_level(logging.INFO)
    install_logging()
    answer = await invoke("get_my_profile", bearer=PATIENT)
    assert answer.status == 500
    problem = answer.json
    assert problem["type"] == "urn:psc:problem:internal"
    assert "hunter2" not in answer.body.decode()
    assert "RuntimeError" not in answer.body.decode()
    correlation_id = problem["correlationId"]
    assert answer.headers["x-correlation-id"] == correlation_id
    logged = [r for r in caplog.records if getattr(r, "correlation_id", None) == correlation_id]
    assert logged, "the 500's correlation id must be in the log"
    assert "hunter2" not in caplog.text


async def test_no_phi_reaches_the_logs(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    install_logging(logging.DEBUG)
    record = {**PROFILE, "dateOfBirth": "1980-02-03", "clinicalNotes": "Penicillin allergy"}
    await invoke(
        "put_patient",
        method="PUT",
        bearer=CLINICAL_AGENT,
        json_body=record,
        route_params={"patientId": "p-1"},
    )
    await invoke("get_patient", bearer=CLINICAL_AGENT, route_params={"patientId": "p-1"})
    await put_profile(body={**PROFILE, "phone": "12345"})  # a validation error echoes nothing
    # Something logs carelessly: the guard still keeps the values out.
    logging.getLogger("psc.careless").warning(
        "patient %s wrote %s", "Alice Kowalska", "alice.kowalska@example.org +48 601 234 567"
    )
    text = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    for value in (
        "Alice Kowalska",
        "alice.kowalska@example.org",
        "601 234 567",
        "+48601234567",
        "1980-02-03",
        "Penicillin allergy",
    ):
        assert value not in text, value
