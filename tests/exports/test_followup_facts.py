"""The Power BI feed's notifications and surveys, from the events the real follow-ups write (a
booking's confirmation, a survey after a closed conversation, its answer, a reminder; every SMS
reported undelivered, so each falls back to e-mail), filed by the real history consumer and read
back with pyarrow: a row per change on its day, joined to dates and providers; no patient id, no
address, no text, no survey comment."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow.parquet as pq

from shared.exports.api import FACTS, export_days
from shared.kernel.clock import ManualClock
from shared.kernel.times import parse_stamp
from shared.runtime import Runtime
from tests.conftest import invoke, registered_functions
from tests.exports.test_power_bi_export import read
from tests.followups.harness import (
    PATIENT_DOC,
    book,
    deliver,
    deliver_new,
    events,
    fu_runtime,
    outbox,
    pump,
    pump_reports,
    world,
)
from tests.followups.test_surveys import closed, surveys_on
from tests.history.support import topic_message

__all__ = ["fu_runtime", "world"]

MONDAY, TUESDAY, THURSDAY = date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 8)
COMMENT = "Kind and quick, thank you."


async def settle(runtime: Runtime) -> None:
    """Sends due now, their delivery reports, the fallbacks those cause and theirs."""
    for _ in range(2):
        await pump(runtime)
        await pump_reports(runtime)


async def followup_week(runtime: Runtime, clock: ManualClock) -> list[dict[str, Any]]:
    # The fictional 555-01XX number accepts an SMS and then reports it undelivered.
    await runtime.store.container("patients").upsert({**PATIENT_DOC, "phone": "+12025550123"})
    await surveys_on(runtime)
    await book()  # Monday 09:00: the confirmation; reminders Thursday 12:00 and Friday 10:00
    await deliver_new(runtime)
    await settle(runtime)
    await deliver([closed("conv-1")])
    clock.advance(seconds=3600)
    await settle(runtime)  # the survey, Monday 10:00
    link = next(s for s in await outbox(runtime) if s["purpose"] == "survey")["links"]["survey"]
    clock.advance(days=1)
    answered = await invoke(
        "answer_survey",
        method="POST",
        json_body={"csat": 4, "nps": 9, "comment": COMMENT},
        route_params={"token": link.rsplit("/", 1)[-1]},
    )
    assert answered.status in (200, 201), answered.json
    clock.set(parse_stamp("2026-01-08T12:00:00.000Z"))
    await settle(runtime)  # the Thursday reminder
    written = await events(runtime, "notifications")
    consume = registered_functions()["event_history"].get_user_function()
    for envelope in written:
        await consume(topic_message(envelope))
        await consume(topic_message(envelope, delivery_count=2))  # redelivered: filed once
    return written


async def test_notifications_and_surveys_are_facts_per_change_from_the_history(
    world: Runtime, clock: ManualClock
) -> None:
    written = await followup_week(world, clock)
    result = await export_days(world, MONDAY, THURSDAY)
    root = world.settings.data_dir / "exports"
    for table in FACTS:
        assert pq.read_schema(root / table.file(MONDAY)).names == list(table.columns), table.name

    notifications = read(root, "notifications").join(read(root, "providers"), "providerId", join_type="inner")
    rows = notifications.to_pylist()
    got = sorted((r["dateKey"], r["purpose"], r["change"], r["channel"], r["fallback"]) for r in rows)
    assert got == [
        (MONDAY, "confirmation", "delivered", "email", False),
        (MONDAY, "confirmation", "sent", "email", True),
        (MONDAY, "confirmation", "sent", "sms", False),
        (THURSDAY, "reminder", "delivered", "email", False),
        (THURSDAY, "reminder", "sent", "email", True),
        (THURSDAY, "reminder", "sent", "sms", False),
    ], "appointment notifications find their provider"
    assert {r["specialty"] for r in rows} == {"cardiology"}
    reminder = [r for r in rows if r["purpose"] == "reminder"]
    assert {(r["sentAt"].isoformat(), r["sentDate"]) for r in reminder} == {("2026-01-08T12:00:00", THURSDAY)}
    assert {r["appointmentId"] for r in rows} == {rows[0]["appointmentId"]}
    assert {r["conversationId"] for r in rows} == {None}
    # The reminder delivery rate as docs/KPIS.md counts it: each notification once.
    sent = {r["notificationId"] for r in reminder if r["change"] == "sent"}
    delivered = {r["notificationId"] for r in reminder if r["change"] == "delivered"}
    assert (len(sent), len(delivered)) == (1, 1)

    survey_notes = [r for r in read(root, "notifications").to_pylist() if r["purpose"] == "survey"]
    assert sorted((r["change"], r["channel"], r["conversationId"]) for r in survey_notes) == [
        ("delivered", "email", "conv-1"),
        ("sent", "email", "conv-1"),
        ("sent", "sms", "conv-1"),
    ]
    assert {(r["queueId"], r["agentId"], r["appointmentId"]) for r in survey_notes} == {
        ("general", "agent-1", None)
    }

    surveys = read(root, "surveys").join(read(root, "dates"), "dateKey", join_type="inner").to_pylist()
    surveys.sort(key=lambda r: r["at"])
    assert [(r["dateKey"], r["change"], r["channel"], r["csat"], r["nps"]) for r in surveys] == [
        (MONDAY, "sent", "sms", None, None),
        (TUESDAY, "answered", None, 4, 9),
    ], "one survey.sent however many channels, and its answer on the day answered"
    sent_row, answer_row = surveys
    assert sent_row["surveyId"] == answer_row["surveyId"] == "survey:conv-1"
    assert answer_row["sentAt"] == sent_row["sentAt"] == sent_row["at"]
    assert (answer_row["sentDate"], answer_row["isoWeekday"]) == (MONDAY, 2)
    assert {(r["conversationId"], r["queueId"], r["agentId"]) for r in surveys} == {
        ("conv-1", "general", "agent-1")
    }
    assert result.rows["notifications"] == len(rows) + len(survey_notes)
    assert result.rows["surveys"] == 2

    for path in sorted(root.rglob("*.parquet")):
        table = pq.read_table(path)
        text = str(table.to_pylist()) + str(table.schema)
        for phi in ("p-1", "Anna", "+12025550123", "anna@example.org", COMMENT, "Kind"):
            assert phi not in text, (path.name, phi)
        assert not {"patientId", "comment", "text", "to", "reason"} & set(table.column_names)
    assert all(COMMENT not in str(e) for e in written), "the comment is in no event either"


async def test_exporting_the_followups_again_gives_the_same_rows(world: Runtime, clock: ManualClock) -> None:
    await followup_week(world, clock)
    await export_days(world, MONDAY, THURSDAY)
    root = world.settings.data_dir / "exports"
    first = (read(root, "notifications").to_pylist(), read(root, "surveys").to_pylist())
    await export_days(world, MONDAY, THURSDAY)
    assert (read(root, "notifications").to_pylist(), read(root, "surveys").to_pylist()) == first
    assert (len(first[0]), len(first[1])) == (9, 2)
