"""Timer schedules as the Functions host reads them: NCRONTAB with six fields, seconds first
(`{second} {minute} {hour} {day} {month} {day-of-week}`), or a TimeSpan like `00:05:00`.

NCRONTAB is evaluated in UTC, or in the IANA zone named by WEBSITE_TIME_ZONE (DST included).
A TimeSpan repeats that long after the previous run started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from devhost.config_files import parse_timespan
from devhost.errors import StartError


@dataclass(frozen=True)
class Schedule:
    """When a timer function is due."""

    text: str
    cron: str | None = None
    interval: timedelta | None = None
    zone: tzinfo = UTC

    @classmethod
    def parse(cls, text: str, *, time_zone: str | None = None) -> Schedule:
        zone: tzinfo = UTC
        if time_zone:
            try:
                zone = ZoneInfo(time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise StartError(
                    f"WEBSITE_TIME_ZONE {time_zone!r} is not an IANA time zone name (e.g. Europe/Berlin)"
                ) from None
        stripped = text.strip()
        if ":" in stripped and " " not in stripped:
            interval = parse_timespan(stripped, what="schedule")
            if interval <= timedelta(0):
                raise StartError(f"schedule {text!r}: a TimeSpan schedule must be positive")
            return cls(text=text, interval=interval, zone=zone)
        fields = stripped.split()
        if len(fields) != 6:
            raise StartError(
                f"schedule {text!r}: NCRONTAB needs six fields "
                "'{second} {minute} {hour} {day} {month} {day-of-week}'"
            )
        if not croniter.is_valid(stripped, second_at_beginning=True):
            raise StartError(f"schedule {text!r} is not a valid NCRONTAB expression")
        return cls(text=text, cron=stripped, zone=zone)

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after `moment` (for a TimeSpan: `moment` + interval)."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        local = moment.astimezone(self.zone)
        following: datetime = croniter(self.cron, local, second_at_beginning=True).get_next(datetime)
        return following.astimezone(UTC)
