"""Calendar arithmetic: wall-clock grids in the provider's zone, DST, exceptions, booking rules,
and the provider model's validation."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.kernel.times import stamp
from shared.scheduling.model import Calendar, FhirSlotQuery, Provider, SlotQuery, search_window, slot_id


def calendar(zone: str, hours: dict[str, Any], slot: int = 60, **extra: Any) -> Calendar:
    return Calendar.of(
        Provider.model_validate(
            {
                "name": "x",
                "specialty": "y",
                "timeZone": zone,
                "slotMinutes": slot,
                "weeklyHours": hours,
                **extra,
            }
        )
    )


def starts(cal: Calendar, day: date) -> list[str]:
    return [stamp(s) for s, _ in cal.slots_on(day)]


EVERY_DAY = {d: [["08:00", "09:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.mark.parametrize(
    ("day", "utc"),
    [
        (date(2026, 3, 27), "2026-03-27T07:00:00.000Z"),  # Friday before the last Sunday of March: CET
        (date(2026, 3, 28), "2026-03-28T07:00:00.000Z"),
        (date(2026, 3, 29), "2026-03-29T06:00:00.000Z"),  # the change happens at 02:00 that Sunday
        (date(2026, 3, 30), "2026-03-30T06:00:00.000Z"),
        (date(2026, 10, 24), "2026-10-24T06:00:00.000Z"),
        (date(2026, 10, 25), "2026-10-25T07:00:00.000Z"),  # back to CET on the last Sunday of October
    ],
)
def test_eight_oclock_in_warsaw_moves_with_dst(day: date, utc: str) -> None:
    assert starts(calendar("Europe/Warsaw", EVERY_DAY), day) == [utc]


@pytest.mark.parametrize(
    ("day", "utc"),
    [
        (date(2026, 3, 7), "2026-03-07T13:00:00.000Z"),  # EST
        (date(2026, 3, 8), "2026-03-08T12:00:00.000Z"),  # EDT from the second Sunday of March
        (date(2026, 10, 31), "2026-10-31T12:00:00.000Z"),
        (date(2026, 11, 1), "2026-11-01T13:00:00.000Z"),  # EST again from the first Sunday of November
    ],
)
def test_eight_oclock_in_new_york_moves_with_dst(day: date, utc: str) -> None:
    assert starts(calendar("America/New_York", EVERY_DAY), day) == [utc]


NIGHT = {"sun": [["00:00", "05:00"]]}


def test_a_slot_in_the_skipped_hour_does_not_exist_in_warsaw() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST.
    assert starts(calendar("Europe/Warsaw", NIGHT, slot=30), date(2026, 3, 29)) == [
        "2026-03-28T23:00:00.000Z",  # 00:00 CET
        "2026-03-28T23:30:00.000Z",
        "2026-03-29T00:00:00.000Z",  # 01:00
        "2026-03-29T00:30:00.000Z",
        # 02:00 and 02:30 do not exist
        "2026-03-29T01:00:00.000Z",  # 03:00 CEST
        "2026-03-29T01:30:00.000Z",
        "2026-03-29T02:00:00.000Z",  # 04:00
        "2026-03-29T02:30:00.000Z",
    ]


def test_a_slot_in_the_repeated_hour_is_offered_once_in_warsaw() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:00-03:00 happens twice.
    result = starts(calendar("Europe/Warsaw", NIGHT, slot=60), date(2026, 10, 25))
    assert result == [
        "2026-10-24T22:00:00.000Z",  # 00:00 CEST
        "2026-10-24T23:00:00.000Z",  # 01:00 CEST
        "2026-10-25T00:00:00.000Z",  # 02:00 CEST, the first of the two 02:00s
        "2026-10-25T02:00:00.000Z",  # 03:00 CET
        "2026-10-25T03:00:00.000Z",  # 04:00 CET
    ]
    assert len(set(result)) == len(result)


def test_new_york_night_shifts_across_both_changes() -> None:
    cal = calendar("America/New_York", NIGHT, slot=30)
    spring = starts(cal, date(2026, 3, 8))
    assert "2026-03-08T07:00:00.000Z" in spring  # 03:00 EDT
    assert len(spring) == 8  # 02:00 and 02:30 do not exist
    autumn = starts(cal, date(2026, 11, 1))
    assert len(autumn) == 10  # 01:00 and 01:30 once each
    assert autumn[2:4] == ["2026-11-01T05:00:00.000Z", "2026-11-01T05:30:00.000Z"]  # 01:00 EDT, 01:30 EDT
    assert autumn[4] == "2026-11-01T07:00:00.000Z"  # 02:00 EST


def test_slots_never_overlap_across_a_change() -> None:
    for zone in ("Europe/Warsaw", "America/New_York"):
        for day in (date(2026, 3, 8), date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 1)):
            slots = list(calendar(zone, NIGHT, slot=45).slots_on(day))
            for (_, end), (start, _) in itertools.pairwise(slots):
                assert end <= start


def test_several_ranges_and_exceptions() -> None:
    cal = calendar(
        "Europe/Warsaw",
        {"mon": [["13:00", "14:00"], ["08:00", "09:00"]]},
        slot=30,
        exceptions=[
            {"date": "2026-01-12", "hours": []},
            {"date": "2026-01-19", "hours": [["10:00", "11:00"]]},
            {"date": "2026-01-17", "hours": [["09:00", "09:45"]]},  # a Saturday opened
        ],
    )
    assert starts(cal, date(2026, 1, 5)) == [
        "2026-01-05T07:00:00.000Z",
        "2026-01-05T07:30:00.000Z",
        "2026-01-05T12:00:00.000Z",
        "2026-01-05T12:30:00.000Z",
    ]
    assert starts(cal, date(2026, 1, 12)) == []
    assert starts(cal, date(2026, 1, 19)) == ["2026-01-19T09:00:00.000Z", "2026-01-19T09:30:00.000Z"]
    assert starts(cal, date(2026, 1, 17)) == ["2026-01-17T08:00:00.000Z"]  # 09:30 would end after 09:45
    assert starts(cal, date(2026, 1, 6)) == []


def test_a_range_may_end_at_midnight() -> None:
    cal = calendar("Asia/Tokyo", {"fri": [["23:00", "24:00"]]}, slot=30)
    assert starts(cal, date(2026, 1, 9)) == ["2026-01-09T14:00:00.000Z", "2026-01-09T14:30:00.000Z"]


def test_slot_at_knows_the_grid() -> None:
    cal = calendar("Europe/Warsaw", {"tue": [["08:00", "10:00"]]}, slot=30)
    assert cal.slot_at(datetime(2026, 1, 6, 7, 30, tzinfo=UTC)) is not None
    assert cal.slot_at(datetime(2026, 1, 6, 7, 40, tzinfo=UTC)) is None
    assert cal.slot_at(datetime(2026, 1, 6, 9, 0, tzinfo=UTC)) is None  # 10:00 ends the range


def test_booking_rules() -> None:
    cal = calendar(
        "America/New_York",
        {"mon": [["08:00", "17:00"]]},
        bookingRules={"maxDaysAhead": 7, "minNoticeMinutes": 120},
    )
    now = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert cal.rule_violation(now + timedelta(hours=1), now) is not None
    assert cal.rule_violation(now - timedelta(hours=1), now) == "The slot is in the past."
    assert cal.rule_violation(now + timedelta(hours=2), now) is None
    assert cal.rule_violation(datetime(2026, 1, 12, 21, 0, tzinfo=UTC), now) is None  # local day 7
    assert cal.rule_violation(datetime(2026, 1, 13, 14, 0, tzinfo=UTC), now) is not None


def test_search_windows_are_local_days_and_bounded() -> None:
    zone = calendar("America/New_York", {}).zone
    start, end = search_window(SlotQuery.model_validate({"from": "2026-03-08", "to": "2026-03-08"}), zone)
    assert (stamp(start), stamp(end)) == (
        "2026-03-08T05:00:00.000Z",
        "2026-03-09T04:00:00.000Z",
    )  # a 23-hour day
    with pytest.raises(ValueError, match="62 days"):
        search_window(SlotQuery.model_validate({"from": "2026-01-01", "to": "2026-03-04"}), zone)
    search_window(SlotQuery.model_validate({"from": "2026-01-01", "to": "2026-03-03"}), zone)


@pytest.mark.parametrize(
    "change",
    [
        {"timeZone": "../../etc/passwd"},
        {"slotMinutes": 481},
        {"weeklyHours": {"mon": [["8:00", "12:00"]]}},
        {"weeklyHours": {"mon": [["08:00", "12:00", "13:00"]]}},
        {"weeklyHours": {"mon": [["24:00", "24:00"]]}},
        {"exceptions": [{"date": "2026-01-01", "hours": [["10:00", "09:00"]]}]},
        {"bookingRules": {"minNoticeMinutes": -5}},
        {"extra": 1},
    ],
)
def test_bad_providers_are_refused(change: dict[str, Any]) -> None:
    body = {"name": "x", "specialty": "y", "timeZone": "UTC", "slotMinutes": 30, **change}
    with pytest.raises(ValidationError):
        Provider.model_validate(body)


def test_slot_ids_are_deterministic_fhir_ids() -> None:
    start = datetime(2026, 3, 29, 8, 0, tzinfo=UTC).astimezone(calendar("Europe/Warsaw", {}).zone)
    assert slot_id("dr-a.b", start) == "dr-a.b.20260329T0800Z"
    assert len(slot_id("x" * 48, start)) <= 64


def test_fhir_slot_query_windows() -> None:
    day = FhirSlotQuery.model_validate({"schedule": "Schedule/dr-a", "start": "eq2026-01-06"})
    assert day.schedule == "dr-a"
    assert day.window().start == date(2026, 1, 6)
    from_instant = FhirSlotQuery.model_validate({"schedule": "dr-a", "start": "ge2026-01-06T07:00:00+01:00"})
    window = from_instant.window()
    assert window.start == datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 1, 7, 6, 0, tzinfo=UTC)


def test_a_slot_spanning_the_skipped_hour_does_not_exist() -> None:
    # 45-minute slots from 00:00: 01:30-02:15 CET would reach into the skipped hour.
    result = starts(calendar("Europe/Warsaw", NIGHT, slot=45), date(2026, 3, 29))
    assert result[:2] == ["2026-03-28T23:00:00.000Z", "2026-03-28T23:45:00.000Z"]  # 00:00, 00:45 CET
    assert "2026-03-29T00:30:00.000Z" not in result  # 01:30 CET
    assert result[2] == "2026-03-29T01:00:00.000Z"  # 03:00 CEST
    # A slot ending exactly where the hour is skipped is whole.
    assert "2026-03-29T00:30:00.000Z" in starts(calendar("Europe/Warsaw", NIGHT, slot=30), date(2026, 3, 29))
