"""Surveys after a conversation a human handled: once per conversation, after the policy's delay,
never within `capDays` of the last one, and never in place of a reminder."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from tests.conftest import invoke, seed_conversation
from tests.followups.harness import ADMIN, deliver, fu_runtime, outbox, pump, records, world

__all__ = ["fu_runtime", "world"]

SURVEYS = {
    "afterConversation": {"enabled": True, "delay": "PT1H"},
    "afterVisit": {"enabled": False},
    "capDays": 30,
}


def closed(conversation_id: str, *, handled: bool = True, version: int = 5) -> dict[str, Any]:
    return {
        "id": f"{conversation_id}:{version}.1",
        "type": "conversation.closed",
        "aggregateId": conversation_id,
        "version": version,
        "at": "2026-01-05T09:00:00.000Z",
        "data": {"queueId": "general", "agentId": "agent-1", "handled": handled, "endReason": "completed"},
    }


async def surveys_on(runtime: Runtime) -> None:
    answer = await invoke("put_survey_policy", method="PUT", bearer=ADMIN, json_body=SURVEYS)
    assert answer.status == 200, answer.json
    await seed_conversation(runtime, "conv-1", "p-1")
    await seed_conversation(runtime, "conv-2", "p-1")


async def test_a_survey_goes_once_after_a_handled_conversation_closes(
    world: Runtime, clock: ManualClock
) -> None:
    await surveys_on(world)
    await deliver([closed("conv-1"), closed("conv-1")])
    assert await pump(world) == 0, "not before the delay"
    clock.advance(seconds=3600)
    assert await pump(world) == 1
    sent = await outbox(world)
    assert [(s["purpose"], s["subjectId"], s["channel"]) for s in sent] == [("survey", "conv-1", "sms")]
    assert sent[0]["links"]["survey"].startswith("https://psc.example.org/api/surveys/")
    survey = (await records(world))["survey:conv-1"]
    assert survey["attributes"] == {"queueId": "general", "agentId": "agent-1"}


async def test_no_survey_after_a_conversation_no_human_handled_or_within_cap_days(
    world: Runtime, clock: ManualClock
) -> None:
    await surveys_on(world)
    await deliver([closed("conv-1", handled=False)])
    clock.advance(seconds=3600)
    assert await pump(world) == 0
    await deliver([closed("conv-2")])
    clock.advance(seconds=3600)
    assert await pump(world) == 1
    await seed_conversation(world, "conv-3", "p-1")
    await deliver([closed("conv-3")])
    clock.advance(days=2)
    await pump(world)
    assert [s["subjectId"] for s in await outbox(world)] == ["conv-2"]
    assert (await records(world))["survey:conv-3"]["reason"] == "survey-cap-days"


async def test_a_survey_waits_for_the_next_day_when_a_reminder_holds_today(
    world: Runtime, clock: ManualClock
) -> None:
    from tests.followups.harness import book, deliver_new

    await surveys_on(world)
    clock.set(clock.now().replace(day=8, hour=9))  # Thursday 10:00 in Warsaw
    await book()  # Friday 13:00 in Warsaw: reminders Friday 11:00 (PT2H); P1D was due today 13:00
    await deliver_new(world)
    await pump(world)
    await deliver([closed("conv-1")])
    clock.advance(seconds=3600)
    await pump(world)
    survey = (await records(world))["survey:conv-1"]
    assert survey["status"] == "scheduled"
    assert survey["due"] > "2026-01-08T23:00:00.000Z"
    assert [s["purpose"] for s in await outbox(world)] == ["confirmation"]
    clock.advance(timedelta(hours=2).total_seconds())
    await pump(world)
    assert [s["purpose"] for s in await outbox(world)] == ["confirmation", "reminder"]


async def survey_token(world: Runtime, clock: ManualClock) -> str:
    await surveys_on(world)
    await deliver([closed("conv-1")])
    clock.advance(seconds=3600)
    await pump(world)
    return str((await outbox(world))[-1]["links"]["survey"].rsplit("/", 1)[-1])


async def test_a_survey_shows_its_questions_and_is_answered_once(world: Runtime, clock: ManualClock) -> None:
    from tests.conftest import stored_items
    from tests.followups.harness import ledger_events

    token = await survey_token(world, clock)
    shown = await invoke("get_survey", route_params={"token": token})
    assert shown.status == 200
    assert shown.json["language"] == "en"
    assert [(q["id"], q["type"], q.get("min"), q.get("max")) for q in shown.json["questions"]] == [
        ("csat", "rating", 1, 5),
        ("nps", "rating", 0, 10),
        ("comment", "text", None, None),
    ]
    body = {"csat": 4, "nps": 9, "comment": "Kind and quick, thank you."}
    answered = await invoke("answer_survey", method="POST", json_body=body, route_params={"token": token})
    assert answered.status == 200, answered.json
    again = await invoke("answer_survey", method="POST", json_body=body, route_params={"token": token})
    assert again.status == 409
    assert (await invoke("get_survey", route_params={"token": token})).status == 409
    events = [e for e in await ledger_events(world) if e["eventType"] == "survey.answered"]
    assert len(events) == 1
    assert (events[0]["data"]["csat"], events[0]["data"]["nps"]) == (4, 9)
    assert "comment" not in events[0]["data"]
    assert "Kind and quick" not in str(await ledger_events(world))
    answers = [i for i in await stored_items(world, "notifications") if i.get("type") == "survey-answer"]
    assert [(a["csat"], a["nps"], a["comment"]) for a in answers] == [(4, 9, "Kind and quick, thank you.")]
    audit = [a for a in await stored_items(world, "audit") if a["resource"] == "surveys/conv-1"]
    assert [(a["action"], a["patientId"]) for a in audit] == [("create", "p-1")]


async def test_a_bad_answer_is_a_400_and_the_survey_stays_open(world: Runtime, clock: ManualClock) -> None:
    token = await survey_token(world, clock)
    for body in ({"csat": 6, "nps": 9}, {"csat": 3}, {"csat": "4", "nps": 9}, {"csat": 3, "nps": 11, "x": 1}):
        answer = await invoke("answer_survey", method="POST", json_body=body, route_params={"token": token})
        assert answer.status == 400, body
    ok = await invoke(
        "answer_survey", method="POST", json_body={"csat": 3, "nps": 5}, route_params={"token": token}
    )
    assert ok.status == 200


async def test_a_forged_or_expired_survey_link_is_refused(world: Runtime, clock: ManualClock) -> None:
    token = await survey_token(world, clock)
    forged = ("A" if token[0] != "A" else "B") + token[1:]
    assert (await invoke("get_survey", route_params={"token": forged})).status == 404
    body = {"csat": 3, "nps": 5}
    assert (
        await invoke("answer_survey", method="POST", json_body=body, route_params={"token": forged})
    ).status == 404
    clock.advance(days=40)
    assert (
        await invoke("answer_survey", method="POST", json_body=body, route_params={"token": token})
    ).status == 410


async def test_supervisors_read_answers_and_response_rates_per_queue_and_agent(
    world: Runtime, clock: ManualClock
) -> None:
    from tests.conftest import stored_items, token

    token_ = await survey_token(world, clock)
    await invoke(
        "answer_survey", method="POST", json_body={"csat": 5, "nps": 10}, route_params={"token": token_}
    )
    supervisor = token("Supervisor", sub="sup-1")
    window = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    answer = await invoke("survey_report", bearer=supervisor, params=window)
    assert answer.status == 200, answer.json
    report = answer.json
    assert report["totals"] == {
        "sent": 1,
        "answered": 1,
        "responseRate": 1.0,
        "csat": 1.0,
        "meanScore": 5.0,
        "nps": 100.0,
    }
    assert report["byQueue"] == [{"id": "general", **report["totals"]}]
    assert report["byAgent"] == [{"id": "agent-1", **report["totals"]}]
    assert [(a["subjectId"], a["csat"], a["nps"]) for a in report["answers"]] == [("conv-1", 5, 10)]
    empty = await invoke(
        "survey_report",
        bearer=supervisor,
        params={"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"},
    )
    assert empty.json["totals"] == {"sent": 0, "answered": 0}
    assert any(a["resource"] == "supervisor/surveys" for a in await stored_items(world, "audit"))


async def test_the_survey_report_checks_its_window_and_role(world: Runtime) -> None:
    from tests.conftest import token

    supervisor = token("Supervisor", sub="sup-1")
    for params in (
        {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"},
        {"from": "2026-01-01", "to": "2026-01-02T00:00:00Z"},
        {"to": "2026-01-02T00:00:00Z"},
    ):
        assert (await invoke("survey_report", bearer=supervisor, params=params)).status == 400, params
    window = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    for bearer in (token("Agent", sub="agent-1"), token("Patient", sub="x", patient_id="p-1")):
        assert (await invoke("survey_report", bearer=bearer, params=window)).status == 403


def test_the_reports_csat_is_the_share_of_4_and_5_answers_as_the_kpis_count_it() -> None:
    from shared.followups.survey_report import _figures
    from shared.kpis.sums import event_parts, kpis, total

    scores = [(5, 10), (4, 9), (3, 7), (1, 0)]
    figures = _figures(None, 5, scores)
    assert (figures.csat, figures.meanScore, figures.responseRate) == (0.5, 3.25, 0.8)
    assert figures.nps == 25.0  # promoters 10 and 9, detractor 0: (2 - 1) / 4
    events = [
        {
            "id": f"followups:p-{i}:1.1",
            "type": "survey.answered",
            "aggregateId": f"followups:p-{i}",
            "version": 1,
            "at": "2026-01-05T10:00:00.000Z",
            "data": {"csat": c, "nps": n, "sentAt": "2026-01-05T09:00:00.000Z"},
        }
        for i, (c, n) in enumerate(scores)
    ]
    sums = total(p.sums for e in events for p in event_parts(e, 10) if p.scope == "all")
    assert kpis(sums)["csat"] == figures.csat, "the report and the dashboard agree"
    assert kpis(sums)["nps"] == figures.nps
    assert _figures(None, 0, []).model_dump(exclude_none=True) == {"sent": 0, "answered": 0}
