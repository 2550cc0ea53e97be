"""Reminder and survey policies: ISO 8601 offsets, defaults until written, If-Match, roles."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.followups.model import parse_duration
from shared.runtime import Runtime
from tests.conftest import invoke, stored_items, token

ADMIN = token("Administrator", sub="admin-1")
SUPERVISOR = token("Supervisor", sub="sup-1")
AGENT = token("Agent", sub="agent-1")
PATIENT = token("Patient", sub="pat-1", patient_id="p-1")
POLICY = {
    "offsets": ["P2D", "PT2H"],
    "channels": ["sms", "email", "portal"],
    "quietHours": {"start": "21:00", "end": "08:00"},
}


async def put(name: str, body: Any, bearer: str | None = ADMIN, **headers: str) -> Any:
    return await invoke(name, method="PUT", bearer=bearer, json_body=body, headers=headers)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P2D", timedelta(days=2)),
        ("PT2H", timedelta(hours=2)),
        ("P1DT12H", timedelta(hours=36)),
        ("PT90M", timedelta(minutes=90)),
        ("P1W", timedelta(days=7)),
        ("PT0S", timedelta(0)),
    ],
)
def test_offsets_are_iso_8601_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["2D", "P1M", "P1Y", "-P1D", "P31D", "PT", "P", "1 day", "P2D ", "PT-2H"])
def test_a_duration_of_no_fixed_length_or_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601 duration"):
        parse_duration(text)


async def test_the_defaults_apply_until_an_administrator_writes_a_policy(runtime: Runtime) -> None:
    answer = await invoke("get_reminder_policy", bearer=SUPERVISOR)
    assert answer.status == 200
    assert answer.json["offsets"] == ["P1D"]
    assert answer.json["quietHours"] == {"start": "21:00", "end": "08:00"}
    assert answer.json["cap"] == {"perDay": 1, "perWeek": 3}
    assert "ETag" not in answer.headers
    surveys = await invoke("get_survey_policy", bearer=ADMIN)
    assert surveys.json["afterConversation"]["enabled"] is False


async def test_a_written_reminder_policy_is_what_is_read_back_with_its_etag(runtime: Runtime) -> None:
    written = await put("put_reminder_policy", POLICY)
    assert written.status == 200, written.json
    read = await invoke("get_reminder_policy", bearer=ADMIN)
    assert read.json["offsets"] == ["P2D", "PT2H"]
    assert read.headers["ETag"] == written.headers["ETag"]
    stale = await put("put_reminder_policy", {**POLICY, "offsets": ["P1D"]}, **{"If-Match": '"old"'})
    assert stale.status == 412
    fresh = await put(
        "put_reminder_policy", {**POLICY, "offsets": ["P1D"]}, **{"If-Match": read.headers["ETag"]}
    )
    assert fresh.status == 200
    assert (await invoke("get_reminder_policy", bearer=ADMIN)).json["offsets"] == ["P1D"]
    audit = await stored_items(runtime, "audit")
    assert [a["resource"] for a in audit].count("manage/reminder-policy") == 2


@pytest.mark.parametrize(
    "body",
    [
        {**POLICY, "offsets": ["2 days"]},
        {**POLICY, "offsets": ["P1M"]},
        {**POLICY, "offsets": ["-PT2H"]},
        {**POLICY, "offsets": ["PT0S"]},
        {**POLICY, "offsets": ["P1D", "PT24H"]},
        {**POLICY, "offsets": ["P1D"] * 6},
        {**POLICY, "channels": []},
        {**POLICY, "channels": ["sms", "sms"]},
        {**POLICY, "channels": ["fax"]},
        {**POLICY, "quietHours": {"start": "25:00", "end": "08:00"}},
        {**POLICY, "cap": {"perDay": 3, "perWeek": 2}},
        {**POLICY, "cap": {"perDay": "1"}},
        {**POLICY, "extra": True},
    ],
)
async def test_a_bad_reminder_policy_is_a_400_and_changes_nothing(runtime: Runtime, body: Any) -> None:
    answer = await put("put_reminder_policy", body)
    assert answer.status == 400, answer.json
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert await stored_items(runtime, "notifications") == []


async def test_a_survey_policy_takes_durations_and_a_cap_in_days(runtime: Runtime) -> None:
    body = {
        "afterConversation": {"enabled": True, "delay": "PT1H"},
        "afterVisit": {"enabled": True, "delay": "P1D"},
        "capDays": 30,
    }
    assert (await put("put_survey_policy", body)).status == 200
    assert (await invoke("get_survey_policy", bearer=SUPERVISOR)).json == body
    bad = await put("put_survey_policy", {**body, "afterVisit": {"enabled": True, "delay": "tomorrow"}})
    assert bad.status == 400


@pytest.mark.parametrize("bearer", [SUPERVISOR, AGENT, PATIENT])
async def test_only_administrators_write_policies(runtime: Runtime, bearer: str) -> None:
    assert (await put("put_reminder_policy", POLICY, bearer=bearer)).status == 403
    assert (await put("put_survey_policy", {"capDays": 7}, bearer=bearer)).status == 403
    assert await stored_items(runtime, "notifications") == []


@pytest.mark.parametrize("bearer", [AGENT, PATIENT])
async def test_agents_and_patients_cannot_read_policies(runtime: Runtime, bearer: str) -> None:
    assert (await invoke("get_reminder_policy", bearer=bearer)).status == 403
    assert (await invoke("get_survey_policy", bearer=bearer)).status == 403
