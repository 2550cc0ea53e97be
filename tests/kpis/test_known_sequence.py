"""A known sequence of events yields exactly the numbers docs/KPIS.md defines, including the
null cases, per scope and per bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from shared.kpis.api import kpi_range
from shared.runtime import Runtime
from tests.conftest import registered_functions
from tests.history.support import topic_message
from tests.kpis.sequence import HOUR_A1, HOUR_A2, HOUR_ALL, HOUR_BILL, HOUR_GEN, known_day


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def consume(events: list[dict[str, Any]]) -> None:
    handler = registered_functions()["kpi_events"].get_user_function()
    for event in events:
        await handler(topic_message(event))


def close_to(found: dict[str, Any], expected: dict[str, Any]) -> bool:
    return found.keys() == expected.keys() and all(
        found[k] == pytest.approx(v, rel=1e-12) if isinstance(v, float) else found[k] == v
        for k, v in expected.items()
    )


@pytest.mark.parametrize(
    ("queue_id", "agent_id", "expected"),
    [
        (None, None, HOUR_ALL),
        ("gen", None, HOUR_GEN),
        ("bill", None, HOUR_BILL),
        (None, "a-1", HOUR_A1),
        (None, "a-2", HOUR_A2),
    ],
)
async def test_a_known_hour_gives_the_definitions_numbers_in_every_scope(
    runtime: Runtime, queue_id: str | None, agent_id: str | None, expected: dict[str, Any]
) -> None:
    await consume(known_day())
    answer = await kpi_range(
        runtime.store, at("2026-03-02T10:00:00Z"), at("2026-03-02T11:00:00Z"), "1h", queue_id, agent_id
    )
    assert (answer["from"], answer["to"], answer["interval"]) == (
        "2026-03-02T10:00:00.000Z",
        "2026-03-02T11:00:00.000Z",
        "1h",
    )
    assert close_to(answer["totals"], expected), answer["totals"]
    (only,) = answer["series"]
    assert only["start"] == "2026-03-02T10:00:00.000Z"
    assert close_to({k: v for k, v in only.items() if k != "start"}, expected)


async def test_quarters_count_each_kpi_at_its_own_stamp_and_quiet_ones_are_null(runtime: Runtime) -> None:
    await consume(known_day())
    answer = await kpi_range(runtime.store, at("2026-03-02T10:00:00Z"), at("2026-03-02T11:00:00Z"), "15m")
    first, second, third, fourth = answer["series"]
    assert [q["start"][11:16] for q in answer["series"]] == ["10:00", "10:15", "10:30", "10:45"]
    # Incoming at the first queuing; engagement and its waits at the first acceptance.
    assert (first["incoming"], second["incoming"], third["incoming"]) == (4, 0, 1)
    assert (first["engaged"], second["engaged"]) == (1, 1)
    assert (first["firstWaitSeconds"], second["firstWaitSeconds"]) == (20.0, 70.0)
    assert (first["serviceLevel"], second["serviceLevel"]) == (0.5, 0.0)  # c-3's abandon is in the first
    # Handle time at the close; surveys and reminders at their sending; no-shows at the start.
    assert (second["ahtSeconds"], third["ahtSeconds"]) == (1180.0, 1470.0)
    assert first["csat"] == pytest.approx(2 / 3)
    assert first["reminderDeliveryRate"] == pytest.approx(2 / 3)
    assert (third["noShowRate"], fourth["noShowRate"]) == (0.5, 0.0)
    # Nothing to divide by: null, never 0.
    assert fourth["asaSeconds"] is None
    assert fourth["abandonRate"] is None
    assert second["csat"] is None
    assert first["noShowRate"] is None
    assert fourth["utilization"] == 0.0  # a-1 logged in and idle: 0, not null


async def test_a_range_with_no_events_has_zero_counts_and_every_ratio_null(runtime: Runtime) -> None:
    await consume(known_day())
    answer = await kpi_range(runtime.store, at("2026-03-01T00:00:00Z"), at("2026-03-02T00:00:00Z"), "1d")
    assert answer["totals"] == {
        "incoming": 0,
        "engaged": 0,
        "abandoned": 0,
        "shortAbandoned": 0,
        "transferred": 0,
        "firstWaitSeconds": None,
        "asaSeconds": None,
        "serviceLevel": None,
        "abandonRate": None,
        "transferRate": None,
        "ahtSeconds": None,
        "firstResponseSeconds": None,
        "utilization": None,
        "csat": None,
        "nps": None,
        "surveyResponseRate": None,
        "reminderDeliveryRate": None,
        "noShowRate": None,
    }


async def test_a_day_is_the_sum_of_its_buckets_and_a_range_is_widened_to_whole_buckets(
    runtime: Runtime,
) -> None:
    await consume(known_day())
    answer = await kpi_range(runtime.store, at("2026-03-02T09:52:10Z"), at("2026-03-02T11:00:01Z"), "1h")
    # From down to its quarter, to up to a whole interval from there.
    assert (answer["from"], answer["to"]) == ("2026-03-02T09:45:00.000Z", "2026-03-02T11:45:00.000Z")
    day = await kpi_range(runtime.store, at("2026-03-02T00:00:00Z"), at("2026-03-03T00:00:00Z"), "1d")
    assert day["totals"]["incoming"] == 5
    # a-1 was logged in from 09:50 to 11:00: the idle ten minutes before ten count too.
    assert day["totals"]["utilization"] == pytest.approx(2330 / (7200 + 1200))


async def test_a_short_abandon_threshold_is_a_setting(runtime: Runtime) -> None:
    from shared.history.api import parse_envelope
    from shared.kpis.api import apply_kpi_event

    for event in known_day():
        await apply_kpi_event(runtime.store, parse_envelope(event), 2.0)  # c-2 left after 5 s
    answer = await kpi_range(runtime.store, at("2026-03-02T10:00:00Z"), at("2026-03-02T11:00:00Z"), "1h")
    assert (answer["totals"]["abandoned"], answer["totals"]["shortAbandoned"]) == (2, 0)
    assert answer["totals"]["abandonRate"] == pytest.approx(2 / 5)


async def test_redelivery_of_every_message_changes_nothing(runtime: Runtime) -> None:
    from tests.conftest import stored_items

    await consume(known_day())
    once = await stored_items(runtime, "kpis")
    await consume(known_day())
    await consume(list(reversed(known_day())))
    again = await stored_items(runtime, "kpis")
    strip = lambda items: sorted(({k: v for k, v in i.items() if k != "_etag"} for i in items), key=str)  # noqa: E731
    assert strip(again) == strip(once)
    assert {i["_etag"] for i in again} == {i["_etag"] for i in once}  # not even rewritten


async def test_subjects_no_kpi_counts_are_acknowledged_and_write_nothing(runtime: Runtime) -> None:
    from tests.conftest import stored_items
    from tests.history.support import envelope

    await consume(
        [
            envelope(
                "appointment.booked", "ap-9", 1, "2026-03-02T10:00:00.000Z", start="2026-03-03T10:00:00.000Z"
            ),
            envelope(
                "conversation.offered", "c-9", 2, "2026-03-02T10:00:00.000Z", agentId="a-1", queueId="gen"
            ),
            envelope("consult.sent", "k-1", 1, "2026-03-02T10:00:00.000Z"),
        ]
    )
    assert await stored_items(runtime, "kpis") == []


async def test_an_agent_with_no_event_since_counts_their_last_state_up_to_now(runtime: Runtime) -> None:
    from tests.kpis.sequence import Feed, presence, t

    feed = Feed()
    feed.write("a-7", t("10:10:00"), presence("available", 1, t("10:10:00"), capacity=4, queues=("gen",)))
    await consume(feed.events)
    start, end = at("2026-03-02T10:00:00Z"), at("2026-03-02T11:00:00Z")
    stored = await kpi_range(runtime.store, start, end, "15m", agent_id="a-7")
    assert stored["totals"]["utilization"] is None  # nothing closed the interval yet
    now = at("2026-03-02T10:40:00Z")
    live = await kpi_range(runtime.store, start, end, "15m", queue_id="gen", now=now)
    assert [q["utilization"] for q in live["series"]] == [0.25, 0.25, 0.25, None]  # 10:10-10:40
    assert live["totals"]["utilization"] == 0.25
    later = await kpi_range(runtime.store, start, end, "1h", agent_id="a-7", now=at("2026-03-05T00:00:00Z"))
    assert later["totals"]["utilization"] == 0.25  # clipped to the range


def test_two_reminders_delivered_from_one_patient_ledger_count_twice() -> None:
    # The follow-ups write notification events as their patient ledger's (one aggregate id for
    # every notification of a patient): delivery is counted once per notification, not per ledger.
    from shared.kpis.sums import event_parts

    def delivered(n: int, notification: str) -> dict[str, object]:
        data = {"purpose": "reminder", "notificationId": notification, "sentAt": "2026-03-02T10:00:00.000Z"}
        return {
            "id": f"followups:p-1:{n}.1",
            "type": "notification.delivered",
            "aggregateId": "followups:p-1",
            "version": n,
            "at": "2026-03-02T10:00:05.000Z",
            "data": data,
        }

    keys = {p.outcome for n, r in ((1, "r-1"), (2, "r-2")) for p in event_parts(delivered(n, r), 10)}
    assert len(keys) == 2
