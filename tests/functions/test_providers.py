"""Providers (administered calendars) and the free-slot search, through the registered functions."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from tests.conftest import invoke, seed_patients
from tests.functions.test_appointments import (
    ADMIN,
    AGENT,
    KNOWLEDGE,
    OTHER_PATIENT,
    PATIENT,
    WARSAW,
    all_items,
    book,
    put_provider,
)

NEW_YORK: dict[str, Any] = {
    "name": "Dr. Test New York",
    "specialty": "Family-Medicine",
    "timeZone": "America/New_York",
    "slotMinutes": 60,
    "weeklyHours": {"sun": [["00:00", "04:00"]], "mon": [["08:00", "10:00"]]},
    "bookingRules": {"maxDaysAhead": 400, "minNoticeMinutes": 0},
}


async def slots(provider_id: str, start: str, end: str, bearer: str = PATIENT) -> Any:
    return await invoke(
        "provider_slots",
        bearer=bearer,
        route_params={"providerId": provider_id},
        params={"from": start, "to": end},
    )


async def test_an_administrator_creates_and_replaces_a_provider(runtime: Runtime) -> None:
    created = await put_provider()
    assert created.status == 201
    assert created.json["id"] == "dr-warsaw"
    assert created.json["weeklyHours"]["mon"] == [["08:00", "12:00"], ["13:00", "17:00"]]
    assert created.headers["ETag"]
    replaced = await put_provider(body={**WARSAW, "slotMinutes": 20})
    assert replaced.status == 200
    read = await invoke("get_provider", bearer=PATIENT, route_params={"providerId": "dr-warsaw"})
    assert read.status == 200
    assert read.json["slotMinutes"] == 20
    audit = await all_items(runtime, "audit")
    assert sorted((a["action"], a["resource"], a["patientId"]) for a in audit) == [
        ("create", "providers/dr-warsaw", "-"),
        ("update", "providers/dr-warsaw", "-"),
    ]


async def test_providers_are_listed_by_specialty(runtime: Runtime) -> None:
    await put_provider()
    await put_provider("dr-ny", NEW_YORK)
    await put_provider("dr-ny-2", {**NEW_YORK, "name": "Second"})
    everyone = await invoke("list_providers", bearer=AGENT)
    assert [p["id"] for p in everyone.json["items"]] == ["dr-ny", "dr-ny-2", "dr-warsaw"]
    family = await invoke(
        "list_providers", bearer=PATIENT, params={"specialty": "family-medicine", "limit": "1"}
    )
    assert [p["id"] for p in family.json["items"]] == ["dr-ny"]
    rest = await invoke(
        "list_providers",
        bearer=PATIENT,
        params={"specialty": "family-medicine", "continuationToken": family.json["continuationToken"]},
    )
    assert [p["id"] for p in rest.json["items"]] == ["dr-ny-2"]
    assert "continuationToken" not in rest.json
    assert (await invoke("list_providers", bearer=PATIENT, params={"limit": "500"})).status == 400


async def test_a_provider_whose_specialty_changes_moves_between_specialty_lists(runtime: Runtime) -> None:
    await put_provider("dr-ny", NEW_YORK)
    await put_provider("dr-ny", {**NEW_YORK, "specialty": "Cardiology"})
    family = await invoke("list_providers", bearer=PATIENT, params={"specialty": "family-medicine"})
    assert family.json["items"] == []
    cardiology = await invoke("list_providers", bearer=PATIENT, params={"specialty": "CARDIOLOGY"})
    assert [p["id"] for p in cardiology.json["items"]] == ["dr-ny"]
    everyone = await invoke("list_providers", bearer=PATIENT)
    assert [p["id"] for p in everyone.json["items"]] == ["dr-ny"]


async def test_a_provider_list_token_fits_only_its_own_list(runtime: Runtime) -> None:
    await put_provider()
    await put_provider("dr-ny", NEW_YORK)
    page = await invoke("list_providers", bearer=PATIENT, params={"limit": "1"})
    handed = page.json["continuationToken"]
    for params in (
        {"specialty": "cardiology", "continuationToken": handed},
        {"continuationToken": "garbage"},
        {"continuationToken": handed[::-1]},
    ):
        answer = await invoke("list_providers", bearer=PATIENT, params=params)
        assert answer.status == 400, params
        assert answer.json["type"] == "urn:psc:problem:validation"
    rest = await invoke("list_providers", bearer=PATIENT, params={"continuationToken": handed})
    assert [p["id"] for p in rest.json["items"]] == ["dr-warsaw"]


async def test_free_slots_skip_booked_ones_and_are_utc(runtime: Runtime) -> None:
    await put_provider()
    await seed_patients(runtime, "p-1")
    answer = await slots("dr-warsaw", "2026-01-06", "2026-01-06")
    assert answer.status == 200
    body = answer.json
    assert body["providerId"] == "dr-warsaw"
    assert body["timeZone"] == "Europe/Warsaw"
    starts = [s["start"] for s in body["slots"]]
    assert len(starts) == 16  # 8 hours of 30-minute slots
    assert starts[0] == "2026-01-06T07:00:00.000Z"  # 08:00 Warsaw (CET)
    assert starts[8] == "2026-01-06T12:00:00.000Z"  # 13:00 after the lunch break
    assert body["slots"][0]["end"] == "2026-01-06T07:30:00.000Z"
    assert (await book()).status == 201
    again = [s["start"] for s in (await slots("dr-warsaw", "2026-01-06", "2026-01-06")).json["slots"]]
    assert again == starts[1:]


async def test_free_slots_follow_exceptions_and_booking_rules(runtime: Runtime) -> None:
    await put_provider()
    # Monday 09:00Z = 10:00 Warsaw now; one hour's notice: the first bookable slot is 11:00 local.
    today = [s["start"] for s in (await slots("dr-warsaw", "2026-01-05", "2026-01-05")).json["slots"]]
    assert today[0] == "2026-01-05T10:00:00.000Z"
    closed = (await slots("dr-warsaw", "2026-01-07", "2026-01-07")).json["slots"]
    assert closed == []
    short = [s["start"] for s in (await slots("dr-warsaw", "2026-01-08", "2026-01-08")).json["slots"]]
    assert short == ["2026-01-08T09:00:00.000Z", "2026-01-08T09:30:00.000Z"]
    # maxDaysAhead is 30: nothing after 2026-02-04 local.
    late = (await slots("dr-warsaw", "2026-02-04", "2026-02-06")).json["slots"]
    assert {s["start"][:10] for s in late} == {"2026-02-04"}


async def test_instants_bound_the_search_too(runtime: Runtime) -> None:
    await put_provider()
    answer = await slots("dr-warsaw", "2026-01-06T08:00:00+01:00", "2026-01-06T09:00:00+01:00")
    assert [s["start"] for s in answer.json["slots"]] == [
        "2026-01-06T07:00:00.000Z",
        "2026-01-06T07:30:00.000Z",
    ]


async def test_a_dst_day_in_new_york(runtime: Runtime, clock: ManualClock) -> None:
    await put_provider("dr-ny", NEW_YORK)
    await seed_patients(runtime, "p-1")
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT, so the 02:00 slot does not exist.
    spring = [s["start"] for s in (await slots("dr-ny", "2026-03-08", "2026-03-08")).json["slots"]]
    assert spring == ["2026-03-08T05:00:00.000Z", "2026-03-08T06:00:00.000Z", "2026-03-08T07:00:00.000Z"]
    # 2026-11-01: 01:00-02:00 happens twice; offered once.
    autumn = [s["start"] for s in (await slots("dr-ny", "2026-11-01", "2026-11-01")).json["slots"]]
    assert autumn == [
        "2026-11-01T04:00:00.000Z",
        "2026-11-01T05:00:00.000Z",
        "2026-11-01T07:00:00.000Z",
        "2026-11-01T08:00:00.000Z",
    ]
    monday = [s["start"] for s in (await slots("dr-ny", "2026-11-02", "2026-11-02")).json["slots"]]
    assert monday == ["2026-11-02T13:00:00.000Z", "2026-11-02T14:00:00.000Z"]  # 08:00 EST
    assert (await book(provider_id="dr-ny", start="2026-03-08T07:00:00.000Z")).status == 201
    assert (await book(provider_id="dr-ny", start="2026-11-01T06:00:00.000Z")).status == 409  # the repeat


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-01-06"}, "query.to"),
        ({"from": "2026-01-06", "to": "2026-04-06"}, "query"),  # over 62 days
        ({"from": "2026-01-06", "to": "2026-01-05"}, "query"),
        ({"from": "2026-01-06T08:00:00", "to": "2026-01-07"}, "query.from"),  # no offset
        ({"from": "yesterday", "to": "2026-01-07"}, "query.from"),
    ],
)
async def test_bad_slot_queries_are_400(runtime: Runtime, params: dict[str, str], field: str) -> None:
    await put_provider()
    answer = await invoke(
        "provider_slots", bearer=PATIENT, route_params={"providerId": "dr-warsaw"}, params=params
    )
    assert answer.status == 400
    assert field in [e["field"] for e in answer.json["errors"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timeZone": "Mars/Olympus"}, "body.timeZone"),
        ({"slotMinutes": 0}, "body.slotMinutes"),
        ({"weeklyHours": {"mon": [["08:00", "25:00"]]}}, "body.weeklyHours.mon.0.1"),
        ({"weeklyHours": {"mon": [["12:00", "08:00"]]}}, "body.weeklyHours.mon"),
        ({"weeklyHours": {"mon": [["08:00", "12:00"], ["11:00", "13:00"]]}}, "body.weeklyHours.mon"),
        ({"weeklyHours": {"monday": [["08:00", "12:00"]]}}, "body.weeklyHours.monday.[key]"),
        ({"exceptions": [{"date": "2026-02-30", "hours": []}]}, "body.exceptions.0.date"),
        ({"exceptions": [{"date": "2026-02-03"}, {"date": "2026-02-03"}]}, "body.exceptions"),
        ({"bookingRules": {"maxDaysAhead": -1}}, "body.bookingRules.maxDaysAhead"),
        ({"name": ""}, "body.name"),
    ],
)
async def test_bad_providers_are_400_and_write_nothing(
    runtime: Runtime, change: dict[str, Any], field: str
) -> None:
    answer = await put_provider(body={**WARSAW, **change})
    assert answer.status == 400
    assert field in [e["field"] for e in answer.json["errors"]], answer.json["errors"]
    assert await all_items(runtime, "providers") == []
    assert await all_items(runtime, "audit") == []


async def test_a_bad_provider_id_is_400(runtime: Runtime) -> None:
    assert (await put_provider("has space")).status == 400
    assert (await put_provider("under_score")).status == 400  # not a FHIR id character
    assert await all_items(runtime, "providers") == []


async def test_only_administrators_write_providers(runtime: Runtime) -> None:
    for bearer in (AGENT, PATIENT, KNOWLEDGE):
        answer = await invoke(
            "put_provider", method="PUT", bearer=bearer, json_body=WARSAW, route_params={"providerId": "dr-x"}
        )
        assert answer.status == 403
    assert await all_items(runtime, "providers") == []
    assert (await invoke("list_providers")).status == 401


async def test_an_unknown_provider_is_404_for_everyone(runtime: Runtime) -> None:
    await put_provider()
    assert (
        await invoke("get_provider", bearer=OTHER_PATIENT, route_params={"providerId": "dr-none"})
    ).status == 404
    assert (await slots("dr-none", "2026-01-06", "2026-01-06")).status == 404


async def test_a_changed_grid_never_offers_a_slot_overlapping_a_booking(runtime: Runtime) -> None:
    await put_provider()
    await seed_patients(runtime, "p-1", "p-5")
    assert (await book(start="2026-01-06T07:30:00.000Z")).status == 201  # 08:30-09:00 local
    await put_provider(body={**WARSAW, "slotMinutes": 60})
    starts = [s["start"] for s in (await slots("dr-warsaw", "2026-01-06", "2026-01-06")).json["slots"]]
    assert "2026-01-06T07:00:00.000Z" not in starts  # 08:00-09:00 overlaps the booking
    assert "2026-01-06T08:00:00.000Z" in starts
    assert (await book(bearer=ADMIN, start="2026-01-06T07:00:00.000Z")).status == 403
    assert (await book(bearer=AGENT, patientId="p-5", start="2026-01-06T07:00:00.000Z")).status == 409
