"""The planner's promises over random appointments, offsets, zones (with DST) and quiet hours: a
reminder never goes before booking, at or after the start, or inside quiet hours; it is only ever
moved later; every offset is either planned or skipped with a reason; caps are never exceeded and
a reminder keeps its place against a survey."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.followups.planner import Counts, Quiet, day_key, plan_reminders, survey_time, week_key

ZONES = ["Europe/Warsaw", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]
CLOCK = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
QUIET = st.one_of(st.none(), st.builds(Quiet, CLOCK, CLOCK))
OFFSETS = st.lists(
    st.integers(5, 30 * 24 * 60).map(lambda m: (f"PT{m}M", timedelta(minutes=m))),
    min_size=1,
    max_size=5,
    unique_by=lambda o: o[1],
)
MOMENT = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31)).map(lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(
    now=MOMENT,
    ahead=st.integers(1, 40 * 24 * 60),
    offsets=OFFSETS,
    quiet=QUIET,
    zone=st.sampled_from(ZONES),
)
def test_a_reminder_goes_after_booking_before_the_start_and_never_in_quiet_hours(
    now: datetime, ahead: int, offsets: list[tuple[str, timedelta]], quiet: Quiet | None, zone: str
) -> None:
    start = now + timedelta(minutes=ahead)
    planned = plan_reminders(start, now, offsets, quiet, zone)
    assert sorted(p.occasion for p in planned) == sorted(o for o, _ in offsets)
    by_occasion = dict(offsets)
    dues = [p.due for p in planned if p.due is not None]
    assert len(dues) == len(set(dues)), "two reminders at the same moment"
    for p in planned:
        if p.due is None:
            assert p.skipped in ("past", "quiet-hours", "merged")
            if p.skipped == "past":
                assert start - by_occasion[p.occasion] <= now
            continue
        assert p.skipped is None
        assert now < p.due < start
        assert p.due >= start - by_occasion[p.occasion], "a reminder only ever moves later"
        if quiet is not None:
            assert not quiet.contains(p.due.astimezone(ZoneInfo(zone)))


def test_a_reminder_due_at_night_moves_to_the_morning_and_one_too_close_is_skipped() -> None:
    zone = "Europe/Warsaw"
    start = datetime(2026, 3, 10, 8, 30, tzinfo=ZoneInfo(zone))  # 08:30 local
    now = datetime(2026, 3, 1, tzinfo=UTC)
    quiet = Quiet("21:00", "08:00")
    planned = plan_reminders(
        start, now, [("P1D", timedelta(days=1)), ("PT2H", timedelta(hours=2))], quiet, zone
    )
    day_before, two_hours = planned
    assert day_before.due == datetime(2026, 3, 9, 8, 30, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert two_hours.due == datetime(2026, 3, 10, 8, 0, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    early = datetime(2026, 3, 10, 7, 30, tzinfo=ZoneInfo(zone))
    skipped = plan_reminders(early, now, [("PT2H", timedelta(hours=2))], quiet, zone)
    assert skipped[0].due is None
    assert skipped[0].skipped == "quiet-hours"
    past = plan_reminders(start, start - timedelta(hours=1), [("PT2H", timedelta(hours=2))], quiet, zone)
    assert past[0].skipped == "past"


def test_quiet_hours_across_a_dst_change_end_at_the_local_wall_clock() -> None:
    zone = ZoneInfo("Europe/Warsaw")
    # The night of 29 March 2026 loses an hour at 02:00.
    start = datetime(2026, 3, 29, 9, 0, tzinfo=zone)
    planned = plan_reminders(
        start,
        datetime(2026, 3, 1, tzinfo=UTC),
        [("PT4H", timedelta(hours=4))],
        Quiet("21:00", "08:00"),
        "Europe/Warsaw",
    )
    assert planned[0].due is not None
    assert planned[0].due.astimezone(zone).hour == 8


@settings(max_examples=300, deadline=None)
@given(
    at=MOMENT,
    sent=st.lists(st.integers(-6 * 24 * 60, 6 * 24 * 60), max_size=8),
    reminders=st.lists(st.integers(0, 10 * 24 * 60), max_size=4),
    per_day=st.integers(1, 3),
    extra_week=st.integers(0, 4),
    zone=st.sampled_from(ZONES),
    quiet=QUIET,
)
def test_a_survey_never_exceeds_a_cap_and_never_takes_a_reminders_place(
    at: datetime,
    sent: list[int],
    reminders: list[int],
    per_day: int,
    extra_week: int,
    zone: str,
    quiet: Quiet | None,
) -> None:
    per_week = per_day + extra_week
    counts = Counts({}, {})
    for minutes in sent:
        moment = at + timedelta(minutes=minutes)
        if counts.allows(moment, zone, per_day, per_week):
            counts = counts.counted(moment, zone, at)
    reserved = [at + timedelta(minutes=m) for m in reminders]
    when = survey_time(at, counts, zone, per_day, per_week, reserved=reserved, quiet=quiet)
    if when is None:
        return
    assert when >= at
    if quiet is not None:
        assert not quiet.contains(when.astimezone(ZoneInfo(zone)))
    day, week = day_key(when, zone), week_key(when, zone)
    on_day = counts.days.get(day, 0) + sum(1 for r in reserved if day_key(r, zone) == day)
    in_week = counts.weeks.get(week, 0) + sum(1 for r in reserved if week_key(r, zone) == week)
    assert on_day + 1 <= per_day
    assert in_week + 1 <= per_week


def test_a_survey_waits_for_the_next_day_when_a_reminder_holds_today() -> None:
    zone = "UTC"
    at = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # a Monday
    reminder_today = [datetime(2026, 5, 4, 15, 0, tzinfo=UTC)]
    when = survey_time(at, Counts({}, {}), zone, 1, 3, reserved=reminder_today, quiet=Quiet("21:00", "08:00"))
    assert when == datetime(2026, 5, 5, 8, 0, tzinfo=UTC)
    full_week = Counts({}, {"2026-W19": 3})
    assert survey_time(at, full_week, zone, 1, 3) == datetime(2026, 5, 11, 0, 0, tzinfo=UTC)
