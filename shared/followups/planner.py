"""When follow-ups go: pure rules over times, no store and no clock.

* **Reminders** of one appointment version: one per offset at `start - offset`; an offset already
  past when the appointment is booked or moved is skipped (`past`). A reminder due inside the
  quiet hours (on the patient's clock; the patient's own quiet hours win over the policy's) moves
  to the end of the quiet period if that is still before the start, else it is skipped
  (`quiet-hours`). Two reminders that land on the same moment after moving go once (`merged`).
* **Caps**: a patient gets at most `perDay` follow-ups (reminders and surveys) on a calendar day
  and `perWeek` in an ISO week, both on their own clock. Confirmations are not capped. A reminder
  over the cap is skipped (`cap`); a survey waits for the next allowed day, and a day on which a
  reminder is still due keeps the reminder's place, so when both compete the reminder goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.kernel.week import minutes_of

SkipReason = Literal["past", "quiet-hours", "merged", "cap"]
# How far ahead a survey may be pushed by caps before it is dropped (a week's cap frees within 7).
SURVEY_SEARCH_DAYS = 14
KEEP_DAYS = 8  # cap counters older than this are pruned (a week plus the day a zone can shift)


@dataclass(frozen=True)
class Quiet:
    """Quiet hours `HH:MM`-`HH:MM` on the patient's clock; may wrap midnight; equal ends: none."""

    start: str
    end: str

    def contains(self, local: datetime) -> bool:
        begin, end = minutes_of(self.start), minutes_of(self.end) % (24 * 60)
        now = local.hour * 60 + local.minute
        if begin == end:
            return False
        if begin < end:
            return begin <= now < end
        return now >= begin or now < end

    def end_after(self, local: datetime, zone: ZoneInfo) -> datetime:
        """The end of the quiet period `local` is in (an aware datetime in `zone`)."""
        end_minutes = minutes_of(self.end)
        day = local.date()
        if end_minutes == 24 * 60:
            day, end_minutes = day + timedelta(days=1), 0
        candidate = _at(day, end_minutes, zone)
        if candidate <= local:
            candidate = _at(day + timedelta(days=1), end_minutes, zone)
        return candidate


def _at(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    # A wall-clock time in a DST gap does not exist: round trip through UTC normalises it forward.
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone)


@dataclass(frozen=True)
class PlannedReminder:
    occasion: str  # the offset as the policy wrote it (`P2D`): part of the notification id
    due: datetime | None  # UTC; None when skipped
    skipped: SkipReason | None = None


def plan_reminders(
    start: datetime,
    now: datetime,
    offsets: Sequence[tuple[str, timedelta]],
    quiet: Quiet | None,
    zone: str,
) -> list[PlannedReminder]:
    """The reminders of an appointment starting at `start`, booked or moved at `now`, largest
    offset first. Times are aware; the answer's are UTC."""
    tz = ZoneInfo(zone)
    planned: list[PlannedReminder] = []
    taken: set[datetime] = set()
    for occasion, offset in sorted(offsets, key=lambda item: item[1], reverse=True):
        due = start - offset
        if due <= now:
            planned.append(PlannedReminder(occasion, None, "past"))
            continue
        local = due.astimezone(tz)
        if quiet is not None and quiet.contains(local):
            due = quiet.end_after(local, tz).astimezone(UTC)
            if due >= start:
                planned.append(PlannedReminder(occasion, None, "quiet-hours"))
                continue
        due = due.astimezone(UTC)
        if due in taken:
            planned.append(PlannedReminder(occasion, None, "merged"))
            continue
        taken.add(due)
        planned.append(PlannedReminder(occasion, due))
    return planned


def after_quiet(at: datetime, quiet: Quiet | None, zone: str) -> datetime:
    """`at`, or the end of the quiet period it falls in (surveys are not bound to a start)."""
    tz = ZoneInfo(zone)
    local = at.astimezone(tz)
    if quiet is None or not quiet.contains(local):
        return at
    return quiet.end_after(local, tz).astimezone(UTC)


# Caps -------------------------------------------------------------------------------------------


def day_key(at: datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).date().isoformat()


def week_key(at: datetime, zone: str) -> str:
    year, week, _ = at.astimezone(ZoneInfo(zone)).date().isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class Counts:
    """Follow-ups sent per day and per ISO week (keys as `day_key` and `week_key` make them)."""

    days: Mapping[str, int]
    weeks: Mapping[str, int]

    def allows(
        self, at: datetime, zone: str, per_day: int, per_week: int, *, reserved: Iterable[datetime] = ()
    ) -> bool:
        """Whether one more follow-up fits at `at`; `reserved`: reminders still due (each holds a
        place on its own day and week)."""
        day, week = day_key(at, zone), week_key(at, zone)
        held = list(reserved)
        on_day = sum(1 for r in held if day_key(r, zone) == day)
        in_week = sum(1 for r in held if week_key(r, zone) == week)
        return self.days.get(day, 0) + on_day < per_day and self.weeks.get(week, 0) + in_week < per_week

    def counted(self, at: datetime, zone: str, today: datetime) -> Counts:
        """These counts with one more follow-up at `at`, keys older than `KEEP_DAYS` before `today`
        pruned (a week key goes when its last day is that old)."""
        day, week = day_key(at, zone), week_key(at, zone)
        oldest = (today.astimezone(ZoneInfo(zone)) - timedelta(days=KEEP_DAYS)).date().isoformat()
        days = {k: v for k, v in self.days.items() if k >= oldest}
        days[day] = days.get(day, 0) + 1
        oldest_week = week_key(today - timedelta(days=KEEP_DAYS), zone)
        weeks = {k: v for k, v in self.weeks.items() if k >= oldest_week}
        weeks[week] = weeks.get(week, 0) + 1
        return Counts(days, weeks)


def survey_time(
    at: datetime,
    counts: Counts,
    zone: str,
    per_day: int,
    per_week: int,
    *,
    reserved: Iterable[datetime] = (),
    quiet: Quiet | None = None,
) -> datetime | None:
    """When a survey due at `at` may go: `at` itself (moved out of quiet hours) if the caps allow,
    else the start of the next day that allows it (end of its quiet hours, or midnight), counting
    the reminders still due; None if no day within `SURVEY_SEARCH_DAYS` does."""
    held = list(reserved)
    candidate = after_quiet(at, quiet, zone)
    tz = ZoneInfo(zone)
    for _ in range(SURVEY_SEARCH_DAYS + 1):
        if counts.allows(candidate, zone, per_day, per_week, reserved=held):
            return candidate
        next_day = candidate.astimezone(tz).date() + timedelta(days=1)
        candidate = after_quiet(_at(next_day, 0, tz).astimezone(UTC), quiet, zone)
    return None
