"""`GET /api/appointments`: a patient's appointments or a provider's day, for agents and
supervisors, paged from the per-partition list index; and `GET /api/me/appointments` on the same
index."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.kernel import lists
from shared.kernel.catalog import LISTS
from shared.kernel.documents import Query
from shared.runtime import Runtime
from shared.scheduling import index
from tests.conftest import Answer, invoke, seed_patients
from tests.functions.test_appointments import (
    ADMIN,
    AGENT,
    KNOWLEDGE,
    OTHER_PATIENT,
    OTHER_SLOT,
    PATIENT,
    SLOT,
    SUPERVISOR,
    act,
    all_items,
    book,
    put_provider,
)

# Evening hours in New York end after midnight UTC: the provider's Monday holds Tuesday UTC starts.
EVENING_NY: dict[str, Any] = {
    "name": "Dr. Test Evening",
    "specialty": "family-medicine",
    "timeZone": "America/New_York",
    "slotMinutes": 30,
    "weeklyHours": {"mon": [["18:00", "21:00"]], "tue": [["18:00", "21:00"]]},
    "bookingRules": {"maxDaysAhead": 30, "minNoticeMinutes": 0},
}


async def search(params: dict[str, str], bearer: str = AGENT) -> Answer:
    return await invoke("search_appointments", bearer=bearer, params=params)


async def every_page(params: dict[str, str], bearer: str = AGENT) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    pages = 0
    token_: str | None = None
    while True:
        answer = await search({**params, **({"continuationToken": token_} if token_ else {})}, bearer)
        assert answer.status == 200, answer.json
        pages += 1
        items += answer.json["items"]
        token_ = answer.json.get("continuationToken")
        if not token_:
            return items, pages


@pytest.fixture
async def providers(runtime: Runtime) -> None:
    assert (await put_provider()).status == 201
    await seed_patients(runtime, "p-1", "p-2", "p-3")
    assert (await put_provider("dr-evening", EVENING_NY)).status == 201


async def test_staff_page_through_a_patients_appointments_in_start_order(
    runtime: Runtime, providers: None
) -> None:
    late = (await book(start="2026-01-06T09:00:00.000Z")).json
    first = (await book(start=SLOT)).json
    second = (await book(start=OTHER_SLOT)).json
    evening = (await book(provider_id="dr-evening", start="2026-01-06T00:00:00.000Z")).json
    await book(bearer=AGENT, start="2026-01-06T08:00:00.000Z", patientId="p-2")

    items, pages = await every_page({"patientId": "p-1", "maxItems": "2"})
    assert [a["id"] for a in items] == [evening["id"], first["id"], second["id"], late["id"]]
    assert pages == 2
    assert items[0]["providerId"] == "dr-evening"

    # Moving an appointment moves it in the list (listed once); a cancelled one stays listed.
    assert (
        await act("reschedule_appointment", first["id"], body={"start": "2026-01-06T10:00:00.000Z"})
    ).status == 200
    assert (await act("cancel_appointment", second["id"])).status == 200
    items, _ = await every_page({"patientId": "p-1", "maxItems": "3"}, bearer=SUPERVISOR)
    assert [a["id"] for a in items] == [evening["id"], second["id"], late["id"], first["id"]]
    assert items[1]["status"] == "cancelled"
    # The old place is unlisted after the move: one entry per appointment remains.
    entries = await runtime.store.container(LISTS).query(
        Query(), partition_key=index.patient_appointments_list("p-1")
    )
    assert len(entries.items) == 4

    audit = await all_items(runtime, "audit")
    listed = [a for a in audit if a["action"] == "list"]
    assert len(listed) == 4  # one per page read
    assert {(a["actor"], a["resource"], a["patientId"]) for a in listed} == {
        ("agent-1", "patients/p-1/appointments", "p-1"),
        ("supervisor-1", "patients/p-1/appointments", "p-1"),
    }


async def test_a_providers_day_is_the_day_on_the_providers_wall_clock(
    runtime: Runtime, providers: None
) -> None:
    # Monday evening in New York is Tuesday 00:00-02:00 UTC; Tuesday evening is Wednesday UTC.
    monday = [
        (await book(provider_id="dr-evening", start=start, **extra)).json
        for start, extra in [
            ("2026-01-06T01:30:00.000Z", {}),
            ("2026-01-05T23:00:00.000Z", {}),
            ("2026-01-06T00:00:00.000Z", {"bearer": AGENT, "patientId": "p-2"}),
        ]
    ]
    tuesday = (await book(provider_id="dr-evening", start="2026-01-06T23:00:00.000Z")).json
    await book(start=SLOT)  # another provider, same UTC day

    items, pages = await every_page({"providerId": "dr-evening", "date": "2026-01-05", "maxItems": "1"})
    assert [a["start"] for a in items] == [
        "2026-01-05T23:00:00.000Z",
        "2026-01-06T00:00:00.000Z",
        "2026-01-06T01:30:00.000Z",
    ]
    assert {a["id"] for a in items} == {a["id"] for a in monday}
    assert pages >= 3
    next_day, _ = await every_page({"providerId": "dr-evening", "date": "2026-01-06"}, bearer=SUPERVISOR)
    assert [a["id"] for a in next_day] == [tuesday["id"]]
    empty = await search({"providerId": "dr-evening", "date": "2026-01-07"})
    assert empty.json == {"items": []}

    listed = [a for a in await all_items(runtime, "audit") if a["action"] == "list"]
    # Every page audits each patient it shows, under the provider's day.
    assert {(a["patientId"], a["resource"]) for a in listed} == {
        ("p-1", "providers/dr-evening/appointments/2026-01-05"),
        ("p-2", "providers/dr-evening/appointments/2026-01-05"),
        ("p-1", "providers/dr-evening/appointments/2026-01-06"),
    }


async def test_entries_whose_appointment_is_gone_or_elsewhere_are_never_shown(
    runtime: Runtime, providers: None
) -> None:
    mine = (await book(start=SLOT)).json
    theirs = (await book(bearer=AGENT, start=OTHER_SLOT, patientId="p-2")).json
    # What a crash leaves behind: an entry for an appointment never written, and one whose
    # appointment stands elsewhere (here: another patient's, under p-1's list).
    await lists.add(
        runtime.store,
        index.appointment_entry(index.patient_appointments_list("p-1"), "never-written", SLOT),
        index.appointment_entry(index.patient_appointments_list("p-1"), theirs["id"], OTHER_SLOT),
    )
    items, _ = await every_page({"patientId": "p-1", "maxItems": "1"})
    assert [a["id"] for a in items] == [mine["id"]]
    own = await invoke("my_appointments", bearer=PATIENT)
    assert [a["id"] for a in own.json["items"]] == [mine["id"]]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="neither-form"),
        pytest.param({"patientId": "p-1", "providerId": "dr-warsaw", "date": "2026-01-06"}, id="both-forms"),
        pytest.param({"providerId": "dr-warsaw"}, id="provider-without-date"),
        pytest.param({"patientId": "p-1", "date": "2026-01-06"}, id="patient-with-date"),
        pytest.param({"providerId": "dr-warsaw", "date": "2026-13-01"}, id="bad-date"),
        pytest.param({"providerId": "dr-warsaw", "date": "tomorrow"}, id="not-a-date"),
        pytest.param({"providerId": "no such/provider", "date": "2026-01-06"}, id="bad-provider-id"),
        pytest.param({"patientId": "p 1"}, id="bad-patient-id"),
        pytest.param({"patientId": "p-1", "maxItems": "0"}, id="max-items-zero"),
        pytest.param({"patientId": "p-1", "maxItems": "101"}, id="max-items-too-many"),
        pytest.param({"patientId": "p-1", "maxItems": "ten"}, id="max-items-not-a-number"),
        pytest.param({"patientId": "p-1", "continuationToken": "not-a-token"}, id="garbage-token"),
        pytest.param({"patientId": "p-1", "continuationToken": "x" * 2001}, id="oversized-token"),
        pytest.param({"patientId": "p-1", "sort": "start"}, id="unknown-parameter"),
    ],
)
async def test_bad_searches_are_400_and_write_nothing(
    runtime: Runtime, providers: None, params: dict[str, str]
) -> None:
    await book()
    before = len(await all_items(runtime, "audit")), len(await all_items(runtime, LISTS))
    answer = await search(params)
    assert answer.status == 400, answer.json
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert (len(await all_items(runtime, "audit")), len(await all_items(runtime, LISTS))) == before


async def test_a_token_fits_only_the_list_that_handed_it_out(runtime: Runtime, providers: None) -> None:
    await book(start=SLOT)
    await book(start=OTHER_SLOT)
    await book(bearer=AGENT, start=SLOT, provider_id="dr-evening", patientId="p-2")
    await book(bearer=AGENT, start="2026-01-06T07:30:00.000Z", provider_id="dr-evening", patientId="p-2")
    page = await search({"patientId": "p-1", "maxItems": "1"})
    handed = page.json["continuationToken"]
    day = await search({"providerId": "dr-warsaw", "date": "2026-01-06", "maxItems": "1"})
    for params in (
        {"patientId": "p-2", "continuationToken": handed},
        {"providerId": "dr-warsaw", "date": "2026-01-06", "continuationToken": handed},
        {"providerId": "dr-warsaw", "date": "2026-01-07", "continuationToken": day.json["continuationToken"]},
        {"patientId": "p-1", "continuationToken": handed[:-4]},
    ):
        assert (await search(params)).status == 400, params
    mine = await invoke("my_appointments", bearer=PATIENT, params={"continuationToken": handed})
    assert mine.status == 200  # the same list and filter: the patient's own appointments
    assert (await search({"patientId": "p-1", "continuationToken": handed})).status == 200


async def test_an_unknown_provider_is_404(runtime: Runtime, providers: None) -> None:
    answer = await search({"providerId": "dr-nobody", "date": "2026-01-06"})
    assert answer.status == 404
    assert answer.json["detail"] == "No such provider."


async def test_patients_cannot_search_even_their_own(runtime: Runtime, providers: None) -> None:
    await book()
    for bearer in (PATIENT, OTHER_PATIENT, ADMIN, KNOWLEDGE):
        for params in ({"patientId": "p-1"}, {"providerId": "dr-warsaw", "date": "2026-01-06"}):
            assert (await search(params, bearer=bearer)).status == 403
    assert (await invoke("search_appointments", params={"patientId": "p-1"})).status == 401
    assert not [a for a in await all_items(runtime, "audit") if a["action"] == "list"]


async def test_listed_reasons_never_reach_the_logs_of_the_request(
    runtime: Runtime, providers: None, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from shared.auth.principal import Principal
    from shared.kernel.observability import request_scope
    from shared.scheduling import lists as schedule_lists

    reason = "Penicillin-rash"  # id-shaped: only marking it as PHI keeps it out of a log line
    await book(reason=reason)
    staff = Principal(subject="agent-1", name=None, roles=frozenset({"Agent"}))
    caplog.set_level(logging.DEBUG)
    for listing in (
        schedule_lists.patient_appointments(
            runtime.store,
            runtime.clock,
            staff,
            "p-1",
            10,
            None,
            resource="r",
            correlation_id="corr-list-0001",
        ),
        schedule_lists.provider_day(
            runtime.store,
            runtime.clock,
            staff,
            "dr-warsaw",
            date(2026, 1, 6),
            10,
            None,
            correlation_id="corr-list-0002",
        ),
    ):
        with request_scope("corr-list-0003"):
            items, _ = await listing
            assert [a["reason"] for a in items] == [reason]
            logging.getLogger("psc.careless").warning("reason was %s", items[0]["reason"])
    assert reason not in caplog.text + " ".join(str(vars(r)) for r in caplog.records)
