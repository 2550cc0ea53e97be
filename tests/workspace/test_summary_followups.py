"""The unified patient view shows the patient's follow-ups (issue 14): the notifications that went
out and the survey answers, newest first, with ids, statuses and scores only; the survey comment for
supervisors alone; another patient's never. Reading the view writes nothing in `notifications`."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, stored_items, token
from tests.followups.harness import (
    PATIENT,
    PATIENT_DOC,
    book,
    deliver,
    deliver_new,
    fu_runtime,
    outbox,
    pump,
    world,
)
from tests.followups.test_surveys import closed, surveys_on
from tests.workspace.support import AGENT, SUPERVISOR

__all__ = ["fu_runtime", "world"]

OTHER_PATIENT = token("Patient", sub="patient-sub-2", patient_id="p-2")
COMMENT = "Kind and quick, thank you."


async def staff_summary(patient_id: str, bearer: str) -> Answer:
    return await invoke("patient_summary", bearer=bearer, route_params={"patientId": patient_id})


async def my_summary(bearer: str = PATIENT) -> Answer:
    return await invoke("my_summary", bearer=bearer)


@pytest.fixture
async def followed(world: Runtime, clock: ManualClock) -> dict[str, Any]:
    """p-1 booked Friday 13:00 in Warsaw on Monday (confirmed at 09:00Z), was surveyed at 10:00Z
    after a handled conversation and answered, and got the day-before reminder on Thursday."""
    await surveys_on(world)
    appointment = await book()
    await deliver_new(world)
    assert await pump(world) == 1  # the confirmation, at once
    await deliver([closed("conv-1")])
    clock.advance(seconds=3600)
    assert await pump(world) == 1  # the survey
    survey = next(s for s in await outbox(world) if s["purpose"] == "survey")
    link = survey["links"]["survey"].rsplit("/", 1)[-1]
    body = {"csat": 4, "nps": 9, "comment": COMMENT}
    answered = await invoke("answer_survey", method="POST", json_body=body, route_params={"token": link})
    assert answered.status == 200, answered.json
    clock.set(clock.now().replace(day=8, hour=12))  # Thursday 13:00 in Warsaw: P1D is due
    assert await pump(world) == 1
    await world.store.container("patients").upsert({**PATIENT_DOC, "id": "p-2", "name": "Someone Else"})
    return {"appointment": appointment}


async def test_a_patient_s_sent_reminder_and_answered_survey_show_in_both_summary_routes(
    followed: dict[str, Any],
) -> None:
    appointment = followed["appointment"]
    mine = await my_summary()
    staff = await staff_summary("p-1", AGENT)
    assert (mine.status, staff.status) == (200, 200), (mine.json, staff.json)
    for view in (mine.json, staff.json):
        assert [(n["purpose"], n["subjectId"], n["channel"], n["status"]) for n in view["notifications"]] == [
            ("reminder", appointment, "sms", "sent"),
            ("survey", "conv-1", "sms", "sent"),
            ("confirmation", appointment, "sms", "sent"),
        ]
        assert view["notifications"][0] == {
            "id": f"reminder:{appointment}:1:P1D",
            "purpose": "reminder",
            "kind": view["notifications"][0]["kind"],
            "channel": "sms",
            "status": "sent",
            "subjectId": appointment,
            "subjectVersion": 1,
            "sentAt": "2026-01-08T12:00:00.000Z",
        }
        survey = view["notifications"][1]
        assert (survey["answer"], survey["answeredAt"]) == ("answered", "2026-01-05T10:00:00.000Z")
        assert view["surveyAnswers"] == [
            {
                "notificationId": "survey:conv-1",
                "subjectId": "conv-1",
                "csat": 4,
                "nps": 9,
                "sentAt": "2026-01-05T10:00:00.000Z",
                "answeredAt": "2026-01-05T10:00:00.000Z",
            }
        ]
        text = str(view["notifications"]) + str(view["surveyAnswers"])
        for private in (COMMENT, PATIENT_DOC["phone"], PATIENT_DOC["email"], "Dr. Anna Nowak"):
            assert private not in text


async def test_only_supervisors_read_a_survey_comment(followed: dict[str, Any]) -> None:
    supervisor = (await staff_summary("p-1", SUPERVISOR)).json["surveyAnswers"]
    assert [a["comment"] for a in supervisor] == [COMMENT]
    for view in ((await staff_summary("p-1", AGENT)).json, (await my_summary()).json):
        assert [a.get("comment") for a in view["surveyAnswers"]] == [None]


async def test_another_patient_never_sees_these_follow_ups(followed: dict[str, Any]) -> None:
    assert (await staff_summary("p-1", OTHER_PATIENT)).status == 404
    own = await my_summary(OTHER_PATIENT)
    assert own.status == 200, own.json
    assert own.json["notifications"] == own.json["surveyAnswers"] == []


async def test_reading_the_view_writes_nothing_in_the_follow_ups(
    world: Runtime, followed: dict[str, Any]
) -> None:
    before = await stored_items(world, "notifications", children=True)
    for _ in range(2):
        assert (await my_summary()).status == 200
        assert (await staff_summary("p-1", SUPERVISOR)).status == 200
    assert await stored_items(world, "notifications", children=True) == before
