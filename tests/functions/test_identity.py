"""Identity through the registered functions in Entra mode, against local OpenID providers for the
staff tenant and the patients' External ID tenant (tests/oidc.py): the nine token cases, who a
staff member is (`GET /api/agents/me`), and a patient linking their sign-in to their record with
a one-time code from staff — then reading only their own data, and never acting as staff."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from shared.auth.principal import Principal
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.kernel.errors import PreconditionFailed
from shared.patients.links import CROCKFORD, PatientLinks, normalise_code
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import Answer, invoke, registered_functions, token
from tests.oidc import (
    CLIENT_ID,
    FakeTenant,
    entra_settings,
    patient_tenant,
    patient_token,
    rsa_key,
    staff_tenant,
    staff_token,
)

PROVIDER: dict[str, Any] = {
    "name": "Dr. Test",
    "specialty": "cardiology",
    "timeZone": "Europe/Warsaw",
    "slotMinutes": 30,
    "weeklyHours": {d: [["08:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
}
SLOT = "2026-01-06T07:00:00Z"  # Tuesday 08:00 in Warsaw; the manual clock starts Monday 09:00Z
OTHER_SLOT = "2026-01-06T07:30:00Z"


@dataclass
class Entra:
    runtime: Runtime
    staff: FakeTenant
    patients: FakeTenant
    data_dir: Path

    def admin(self) -> str:
        return staff_token(self.staff, oid="oid-admin", roles=["Administrator"])

    def agent(self, oid: str = "oid-agent") -> str:
        return staff_token(self.staff, oid=oid, roles=["Agent"])

    def patient(self, oid: str = "oid-anna", **claims: Any) -> str:
        return patient_token(self.patients, oid=oid, **claims)


@pytest.fixture
def tenants() -> Iterator[tuple[FakeTenant, FakeTenant]]:
    staff, patients = staff_tenant(), patient_tenant()
    yield staff, patients
    staff.close()
    patients.close()


@pytest.fixture
async def entra(
    tmp_path: Path, clock: ManualClock, tenants: tuple[FakeTenant, FakeTenant]
) -> AsyncIterator[Entra]:
    staff, patients = tenants
    data_dir = tmp_path / "data"
    rt = await build_runtime(entra_settings(data_dir, staff, patients), clock=clock)
    with use_runtime(rt):
        yield Entra(rt, staff, patients, data_dir)
    await rt.close()


async def items(runtime: Runtime, container: str) -> list[dict[str, Any]]:
    page = await runtime.store.container(container).query_cross_partition(Query(), max_items=1000)
    return page.items


async def put_patient(e: Entra, patient_id: str, name: str = "Anna Example") -> None:
    answer = await invoke(
        "put_patient",
        method="PUT",
        bearer=e.agent(),
        route_params={"patientId": patient_id},
        json_body={"name": name},
    )
    assert answer.status == 201, answer.json


async def new_code(e: Entra, patient_id: str = "p-1", bearer: str | None = None) -> Answer:
    return await invoke(
        "create_link_code",
        method="POST",
        bearer=bearer or e.agent(),
        route_params={"patientId": patient_id},
    )


async def link(bearer: str, code: str) -> Answer:
    return await invoke("link_me", method="POST", bearer=bearer, json_body={"code": code})


async def linked(e: Entra, oid: str = "oid-anna", patient_id: str = "p-1") -> str:
    """A patient token whose sign-in is linked to `patient_id`."""
    code = (await new_code(e, patient_id)).json["code"]
    bearer = e.patient(oid)
    answer = await link(bearer, code)
    assert answer.status == 200, answer.json
    return bearer


# --- the nine token cases, through the HTTP edge --------------------------------------------


def _hs256(staff: FakeTenant) -> str:
    claims = jwt.decode(staff_token(staff), options={"verify_signature": False})
    return jwt.encode(claims, "s" * 64, algorithm="HS256", headers={"kid": staff.kid})


TOKEN_CASES: list[tuple[str, Callable[[FakeTenant], str], int]] = [
    ("v2, aud = client id", lambda s: staff_token(s, version="v2"), 200),
    ("v1, aud = App ID URI", lambda s: staff_token(s, version="v1"), 200),
    ("v1, aud = client id", lambda s: staff_token(s, version="v1", aud=CLIENT_ID), 200),
    ("another audience", lambda s: staff_token(s, aud="api://another-api"), 401),
    (
        "another tenant",
        lambda s: staff_token(
            s, iss="https://login.microsoftonline.com/44444444-0000-0000-0000-000000000000/v2.0"
        ),
        401,
    ),
    (
        "a key not in the JWKS",
        lambda s: s.sign(
            jwt.decode(staff_token(s), options={"verify_signature": False}), kid="kx", key=rsa_key(4)
        ),
        401,
    ),
    ("HS256", _hs256, 401),
    ("expired", lambda s: staff_token(s, exp=1_700_000_000, iat=1_699_990_000, nbf=1_699_990_000), 401),
    ("valid, without the role", lambda s: staff_token(s, roles=[]), 403),
]


@pytest.mark.parametrize(("case", "make", "status"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
async def test_the_nine_token_cases_answer_as_the_brief_says(
    entra: Entra, case: str, make: Callable[[FakeTenant], str], status: int
) -> None:
    answer = await invoke("who_am_i", bearer=make(entra.staff))
    assert answer.status == status, (case, answer.json)
    if status == 200:
        assert answer.json["id"] == "oid-agent-1"
    else:
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        expected = "urn:psc:problem:unauthorized" if status == 401 else "urn:psc:problem:forbidden"
        assert answer.json["type"] == expected
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


# --- GET /api/agents/me --------------------------------------------------------------------


async def test_staff_learn_their_oid_and_whether_they_are_registered(entra: Entra) -> None:
    me = await invoke("who_am_i", bearer=entra.agent("oid-new-nurse"))
    assert me.status == 200
    assert me.json == {"id": "oid-new-nurse", "name": "Staff Member", "roles": ["Agent"], "registered": False}
    put = await invoke(
        "put_agent",
        method="PUT",
        bearer=entra.admin(),
        route_params={"agentId": me.json["id"]},
        json_body={"name": "New Nurse"},
    )
    assert put.status == 201, put.json
    assert (await invoke("who_am_i", bearer=entra.agent("oid-new-nurse"))).json["registered"] is True
    supervisor = staff_token(entra.staff, oid="oid-sup", roles=["Supervisor"], version="v1")
    assert (await invoke("who_am_i", bearer=supervisor)).json["id"] == "oid-sup"


async def test_patients_and_bots_are_not_staff_to_agents_me(entra: Entra) -> None:
    assert (await invoke("who_am_i", bearer=entra.patient(roles=["Administrator"]))).status == 403
    assert (await invoke("who_am_i", bearer=staff_token(entra.staff, roles=["Bot.Escalate"]))).status == 403


async def test_in_dev_mode_the_staff_id_is_the_sub(runtime: Runtime) -> None:
    answer = await invoke("who_am_i", bearer=token("Supervisor", sub="dev-sup"))
    assert answer.json == {"id": "dev-sup", "name": "dev-sup", "roles": ["Supervisor"], "registered": False}


# --- patients sign in and link -------------------------------------------------------------


async def test_an_unlinked_patient_is_told_how_to_link_on_every_patient_route(entra: Entra) -> None:
    await put_patient(entra, "p-1")
    bearer = entra.patient()
    answers = [
        await invoke("get_my_profile", bearer=bearer),
        await invoke("get_patient", bearer=bearer, route_params={"patientId": "p-1"}),
        await invoke("my_appointments", bearer=bearer),
        await invoke("list_providers", bearer=bearer),
    ]
    for answer in answers:
        assert answer.status == 403
        assert answer.json["type"] == "urn:psc:problem:not-linked"
        assert "POST /api/me/link" in answer.json["detail"]
        assert "link code" in answer.json["detail"]


async def test_a_patient_links_with_a_code_from_staff_and_then_reads_only_their_own_data(
    entra: Entra,
) -> None:
    await put_patient(entra, "p-1", "Anna Example")
    await put_patient(entra, "p-2", "Bob Other")
    issued = await new_code(entra, "p-1")
    assert issued.status == 201
    code = issued.json["code"]
    assert len(code) == 10
    assert set(code) <= set(CROCKFORD)
    assert issued.json["expiresAt"].startswith("2026-01-06T09:00:00")  # 24 h on the runtime clock

    # Typed the way people type: lower case, a hyphen, O for 0 and I/L for 1.
    typed = (code[:5] + "-" + code[5:]).lower().replace("0", "o").replace("1", "l")
    answer = await link(entra.patient(), typed)
    assert answer.status == 200, answer.json
    assert answer.json == {"patientId": "p-1"}

    bearer = entra.patient()
    profile = await invoke("get_my_profile", bearer=bearer)
    assert profile.status == 200
    assert profile.json["name"] == "Anna Example"
    assert (await invoke("get_patient", bearer=bearer, route_params={"patientId": "p-1"})).status == 200
    other = await invoke("get_patient", bearer=bearer, route_params={"patientId": "p-2"})
    assert other.status == 404
    assert (await invoke("get_patient", bearer=bearer, route_params={"patientId": "p-404"})).status == 404

    # Appointments: the patient books for themselves and sees only their own.
    provider = await invoke(
        "put_provider",
        method="PUT",
        bearer=entra.admin(),
        json_body=PROVIDER,
        route_params={"providerId": "dr"},
    )
    assert provider.status == 201, provider.json
    for_another = await invoke(
        "book_appointment",
        method="POST",
        bearer=bearer,
        json_body={"providerId": "dr", "start": SLOT, "reason": "Check-up", "patientId": "p-2"},
    )
    assert for_another.status == 404
    mine = await invoke(
        "book_appointment",
        method="POST",
        bearer=bearer,
        json_body={"providerId": "dr", "start": SLOT, "reason": "Check-up"},
    )
    assert mine.status == 201, mine.json
    assert mine.json["patientId"] == "p-1"
    theirs = await invoke(
        "book_appointment",
        method="POST",
        bearer=entra.agent(),
        json_body={"providerId": "dr", "start": OTHER_SLOT, "reason": "Check-up", "patientId": "p-2"},
    )
    assert theirs.status == 201, theirs.json
    listed = await invoke("my_appointments", bearer=bearer)
    assert listed.status == 200
    assert [a["id"] for a in listed.json["items"]] == [mine.json["id"]]
    assert all(a["patientId"] == "p-1" for a in listed.json["items"])
    foreign = await invoke(
        "get_appointment", bearer=bearer, route_params={"appointmentId": theirs.json["id"]}
    )
    assert foreign.status == 404

    audit = await items(entra.runtime, "audit")
    resources = {(a["resource"], a["actor"]) for a in audit if a["patientId"] == "p-1"}
    assert ("patients/p-1/link-codes", "oid-agent") in resources
    assert ("patients/p-1/sign-in-link", "oid-anna") in resources


async def test_a_patient_token_claiming_administrator_never_acts_as_staff(entra: Entra) -> None:
    await put_patient(entra, "p-1")
    claims_admin = entra.patient(roles=["Administrator", "Agent", "Supervisor"])

    async def staff_routes_refused(bearer: str) -> None:
        for name, kw in (
            ("put_queue", {"method": "PUT", "route_params": {"queueId": "q"}, "json_body": {"name": "q"}}),
            ("list_agents", {}),
            ("who_am_i", {}),
            ("create_link_code", {"method": "POST", "route_params": {"patientId": "p-1"}}),
            (
                "put_patient",
                {"method": "PUT", "route_params": {"patientId": "p-1"}, "json_body": {"name": "X"}},
            ),
            ("supervisor_board", {}),
        ):
            answer = await invoke(name, bearer=bearer, **kw)
            assert answer.status == 403, (name, answer.json)
            assert answer.json["type"] == "urn:psc:problem:forbidden"

    await staff_routes_refused(claims_admin)
    code = (await new_code(entra, "p-1")).json["code"]
    assert (await link(claims_admin, code)).status == 200
    await staff_routes_refused(claims_admin)
    record = await invoke("get_patient", bearer=claims_admin, route_params={"patientId": "p-1"})
    assert record.status == 200
    assert (await invoke("get_patient", bearer=claims_admin, route_params={"patientId": "p-2"})).status == 404
    assert await items(entra.runtime, "routing") == []


async def test_only_agents_and_administrators_issue_codes_and_only_for_existing_patients(
    entra: Entra,
) -> None:
    await put_patient(entra, "p-1")
    before = await items(entra.runtime, "lookups")
    for role in ("Supervisor", "KnowledgeManager", "Bot.Escalate"):
        refused = await new_code(entra, "p-1", bearer=staff_token(entra.staff, roles=[role]))
        assert refused.status == 403, role
    assert (await new_code(entra, "p-1", bearer=entra.patient())).status == 403
    missing = await new_code(entra, "p-404")
    assert missing.status == 404
    assert missing.json["type"] == "urn:psc:problem:not-found"
    bad = await new_code(entra, "../etc")
    assert bad.status == 400
    assert await items(entra.runtime, "lookups") == before
    assert (await new_code(entra, "p-1", bearer=entra.admin())).status == 201


async def test_codes_are_stored_only_as_hashes(entra: Entra) -> None:
    await put_patient(entra, "p-1")
    code = (await new_code(entra, "p-1")).json["code"]
    stored = [d for d in await items(entra.runtime, "lookups") if d.get("type") == "patient-link-code"]
    assert len(stored) == 1
    assert code not in repr(stored)
    assert stored[0]["ttl"] == 24 * 3600


async def test_a_code_that_collides_with_a_live_one_is_drawn_again(
    entra: Entra, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drawn code already taken (a Conflict on create) is never reused: the retry policy draws
    another; five collisions in a row answer 409 and leave no new code."""
    await put_patient(entra, "p-1")
    taken = (await new_code(entra, "p-1")).json["code"]
    fresh = "A" * len(taken) if taken != "A" * len(taken) else "B" * len(taken)
    draws = iter([taken, taken, fresh])
    monkeypatch.setattr("shared.patients.links.new_code", lambda: next(draws))
    issued = await new_code(entra, "p-1")
    assert (issued.status, issued.json["code"]) == (201, fresh)

    monkeypatch.setattr("shared.patients.links.new_code", lambda: taken)
    before = await items(entra.runtime, "lookups")
    refused = await new_code(entra, "p-1")
    assert refused.status == 409, refused.json
    assert await items(entra.runtime, "lookups") == before


async def test_a_code_works_once(entra: Entra) -> None:
    await put_patient(entra, "p-1")
    code = (await new_code(entra, "p-1")).json["code"]
    assert (await link(entra.patient("oid-anna"), code)).status == 200
    reused = await link(entra.patient("oid-mallory"), code)
    assert reused.status == 400
    assert reused.json["type"] == "urn:psc:problem:invalid-link-code"
    assert (await invoke("get_my_profile", bearer=entra.patient("oid-mallory"))).status == 403
    # The same patient sending it again (a lost answer, a retry) is harmless.
    again = await link(entra.patient("oid-anna"), code)
    assert again.status == 200
    assert again.json == {"patientId": "p-1"}


async def test_an_expired_code_is_refused(entra: Entra, clock: ManualClock) -> None:
    await put_patient(entra, "p-1")
    code = (await new_code(entra, "p-1")).json["code"]
    clock.advance(hours=24)
    answer = await link(entra.patient(), code)
    assert answer.status == 400
    assert answer.json["type"] == "urn:psc:problem:invalid-link-code"


async def test_five_wrong_codes_an_hour_then_429_with_retry_after(entra: Entra, clock: ManualClock) -> None:
    await put_patient(entra, "p-1")
    code = (await new_code(entra, "p-1")).json["code"]
    wrong = "0" * 10 if code != "0" * 10 else "1" * 10
    bearer = entra.patient()
    for _ in range(5):
        clock.advance(seconds=60)
        answer = await link(bearer, wrong)
        assert answer.status == 400, answer.json
    limited = await link(bearer, code)  # even the right code: the account is locked out for now
    assert limited.status == 429
    assert limited.json["type"] == "urn:psc:problem:too-many-requests"
    assert 3300 < int(limited.headers["Retry-After"]) <= 3601 - 4 * 60
    # Another patient's account is not affected.
    assert (await link(entra.patient("oid-other"), wrong)).status == 400
    clock.advance(seconds=int(limited.headers["Retry-After"]))
    assert (await link(bearer, code)).status == 200


async def test_malformed_codes_are_400_and_count_no_attempt(entra: Entra) -> None:
    await put_patient(entra, "p-1")
    before = await items(entra.runtime, "lookups")
    for body in (
        {"code": "SHORT"},
        {"code": "UUUUUUUUUU"},
        {"code": ""},
        {},
        {"code": "0" * 40},
        {"code": 7},
    ):
        answer = await invoke("link_me", method="POST", bearer=entra.patient(), json_body=body)
        assert answer.status == 400, body
        assert answer.json["type"] == "urn:psc:problem:validation"
    assert await items(entra.runtime, "lookups") == before


async def test_a_sign_in_linked_to_one_patient_cannot_be_moved_by_a_code(entra: Entra) -> None:
    await put_patient(entra, "p-1")
    await put_patient(entra, "p-2")
    bearer = await linked(entra, "oid-anna", "p-1")
    code_for_p2 = (await new_code(entra, "p-2")).json["code"]
    answer = await link(bearer, code_for_p2)
    assert answer.status == 409
    assert (await invoke("get_my_profile", bearer=bearer)).json["name"] == "Anna Example"
    # The code was not spent: its rightful patient can still use it.
    assert (await link(entra.patient("oid-bob"), code_for_p2)).json == {"patientId": "p-2"}


def _redeem_in_a_worker(
    data_dir: Path,
    e: Entra,
    clock: ManualClock,
    oid: str,
    code: str,
    ready: threading.Barrier,
    statuses: list[int],
) -> None:
    async def run() -> None:
        peer = await build_runtime(entra_settings(data_dir, e.staff, e.patients), clock=clock)
        try:
            bearer = e.patient(oid)
            await peer.validator.validate("Bearer " + bearer)  # keys fetched before the race starts
            ready.wait(timeout=30)
            with use_runtime(peer):
                statuses.append((await link(bearer, code)).status)
        finally:
            await peer.close()

    asyncio.run(run())


async def test_concurrent_redemptions_of_one_code_have_exactly_one_winner(
    entra: Entra, clock: ManualClock
) -> None:
    await put_patient(entra, "p-1")
    code = (await new_code(entra, "p-1")).json["code"]
    registered_functions()  # index the app once, before the workers share it
    workers = 6
    ready = threading.Barrier(workers)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=_redeem_in_a_worker,
            args=(entra.data_dir, entra, clock, f"oid-racer-{n}", code, ready, statuses),
        )
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join, 60)
    assert sorted(statuses) == [200] + [400] * (workers - 1)
    links = [d for d in await items(entra.runtime, "lookups") if d.get("type") == "patient-link"]
    assert len(links) == 1
    assert links[0]["patientId"] == "p-1"
    winners = [
        n
        for n in range(workers)
        if (await invoke("get_my_profile", bearer=entra.patient(f"oid-racer-{n}"))).status == 200
    ]
    assert len(winners) == 1


class _ReadThenWait:
    """`lookups` whose first read of a link code waits until the other redemption has read it
    too: both then hold the same ETag, the interleaving an ETag check exists for."""

    def __init__(self, inner: Any, barrier: asyncio.Barrier, refused: list[str]) -> None:
        self._inner, self._barrier, self._refused, self._waited = inner, barrier, refused, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read(self, id: str, partition_key: str) -> Any:
        doc = await self._inner.read(id, partition_key)
        if id.startswith("link-code:") and not self._waited:
            self._waited = True
            await self._barrier.wait()
        return doc

    async def replace(self, item: Any, *, etag: str | None = None) -> Any:
        try:
            return await self._inner.replace(item, etag=etag)
        except PreconditionFailed:
            self._refused.append(item["id"])
            raise


class _Store:
    def __init__(self, inner: Any, lookups: _ReadThenWait) -> None:
        self._inner, self._lookups = inner, lookups

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def container(self, name: str) -> Any:
        return self._lookups if name == "lookups" else self._inner.container(name)


async def test_two_redemptions_holding_the_same_etag_cannot_both_win(
    entra: Entra, clock: ManualClock
) -> None:
    await put_patient(entra, "p-1")
    code = (await new_code(entra, "p-1")).json["code"]
    barrier, refused = asyncio.Barrier(2), []
    store = entra.runtime.store

    def redeemer(oid: str) -> Any:
        links = PatientLinks(
            _Store(store, _ReadThenWait(store.container("lookups"), barrier, refused)), clock
        )
        principal = Principal(subject=oid, name=None, roles=frozenset(), provider="patient", issuer="iss")
        return links.redeem(principal, code, "corr-race-000")

    outcomes = await asyncio.gather(redeemer("oid-a"), redeemer("oid-b"), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["InvalidLinkCode", "str"]
    assert "p-1" in outcomes
    assert len(refused) == 1  # the loser's write was refused by the ETag
    assert refused[0].startswith("link-code:")


def test_codes_are_read_the_crockford_way() -> None:
    assert normalise_code("7kq2m-9xh4t") == "7KQ2M9XH4T"
    assert normalise_code("O1IL0 ABCDE") == "01110ABCDE"
    assert normalise_code("7KQ2M9XH4U") is None  # U is not in the alphabet
    assert normalise_code("7KQ2M9XH4") is None


# --- dev mode keeps working, and can link too ----------------------------------------------


async def test_dev_tokens_with_patient_id_work_as_before_and_need_no_link(runtime: Runtime) -> None:
    patient = token("Patient", sub="dev-p", patient_id="p-1")
    put = await invoke("put_my_profile", method="PUT", bearer=patient, json_body={"name": "Dev Patient"})
    assert put.status == 201
    assert (await invoke("get_my_profile", bearer=patient)).status == 200
    code = (
        await invoke(
            "create_link_code",
            method="POST",
            bearer=token("Agent", sub="a"),
            route_params={"patientId": "p-1"},
        )
    ).json["code"]
    assert (await link(patient, code)).status == 409


async def test_a_dev_patient_without_patient_id_links_like_an_external_id_patient(runtime: Runtime) -> None:
    agent = token("Agent", sub="a")
    put = await invoke(
        "put_patient",
        method="PUT",
        bearer=agent,
        route_params={"patientId": "p-7"},
        json_body={"name": "Seven"},
    )
    assert put.status == 201
    patient = token("Patient", sub="dev-unlinked")
    assert (await invoke("get_my_profile", bearer=patient)).json["type"] == "urn:psc:problem:not-linked"
    code = (
        await invoke("create_link_code", method="POST", bearer=agent, route_params={"patientId": "p-7"})
    ).json["code"]
    assert (await link(patient, code)).json == {"patientId": "p-7"}
    assert (await invoke("get_my_profile", bearer=patient)).json["name"] == "Seven"
