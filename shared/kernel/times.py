"""Time: the one time-stamp format, and the bounded dates and instants we accept from outside.

**Time stamps.** Every time we store or emit is `stamp(when)`: RFC 3339 in UTC with milliseconds
and `Z` (`2026-03-30T06:00:00.000Z`). Fixed width, so stamps sort as strings (the store's indexed
`sortKey`s and range queries rely on it), and `parse_stamp` reads them back.

`Day` is a calendar date `YYYY-MM-DD`; `Instant` an ISO-8601 date-time **with** an offset (or `Z`),
normalised to UTC. Both are held to the years 1900-2199: wide enough for any date of birth, any
provider calendar and any booking, and far enough inside Python's 0001-9999 that arithmetic on an
accepted value (± a day for local days, ± 14 h for offsets, a 62-day search window, a two-year
booking horizon) can never overflow. `9999-12-31` or `0001-01-01+01:00` are refused here, as 400s,
instead of raising OverflowError deep inside a search.

The accepted text is RFC 3339's shape (ASCII digits; `T`, `t` or a space between date and time;
fractions of a second optional), not everything `datetime.fromisoformat` would take (week dates,
basic format).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)

_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INSTANT = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)
DAY_RULE = f"must be a date YYYY-MM-DD between {FIRST_DAY} and {LAST_DAY}"
INSTANT_RULE = "must be an ISO-8601 date-time with a UTC offset or Z, such as 2026-03-30T06:00:00Z"
RANGE_RULE = f"must lie between {FIRST_DAY} and {LAST_DAY}"


def stamp(when: datetime) -> str:
    """`when` as RFC 3339 UTC with milliseconds and `Z` (a naive time is taken as UTC)."""
    at = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    # By hand, not strftime: "%Y" is not zero-padded below year 1000 on every platform.
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:{at.second:02d}"
        f".{at.microsecond // 1000:03d}Z"
    )


def parse_stamp(text: str) -> datetime:
    """A stamp we wrote (any RFC 3339 time with an offset is read too), as an aware UTC datetime."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_day(text: str) -> date:
    """A `YYYY-MM-DD` date within the supported years, else ValueError."""
    if not _DAY.fullmatch(text):
        raise ValueError(DAY_RULE)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(DAY_RULE) from None
    return check_day(day)


def check_day(day: date) -> date:
    if isinstance(day, datetime) or not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(DAY_RULE)
    return day


def parse_instant(text: str) -> datetime:
    """An aware date-time within the supported years, as UTC; else ValueError."""
    match = _INSTANT.fullmatch(text)
    if not match:
        raise ValueError(INSTANT_RULE)
    if not match.group("offset"):
        raise ValueError("needs a UTC offset or Z")
    # The year is checked before any conversion: 9999-12-31T23:00-05:00 would overflow to UTC.
    if not FIRST_DAY.year <= int(text[:4]) <= LAST_DAY.year:
        raise ValueError(RANGE_RULE)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise ValueError(INSTANT_RULE) from None
    return check_instant(parsed)


def check_instant(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset or Z")
    if not FIRST_DAY.year <= value.year <= LAST_DAY.year:
        raise ValueError(RANGE_RULE)
    utc = value.astimezone(UTC)
    if not _EARLIEST <= utc < _LATEST:
        raise ValueError(RANGE_RULE)
    return utc


def _instant(value: Any) -> datetime:
    if isinstance(value, str):
        return parse_instant(value)
    if isinstance(value, datetime):
        return check_instant(value)
    raise ValueError(INSTANT_RULE)


def _day(value: Any) -> date:
    if isinstance(value, str):
        return parse_day(value)
    if isinstance(value, date):
        return check_day(value)
    raise ValueError(DAY_RULE)


Instant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "With an offset or Z; years 1900-2199.",
            "examples": ["2026-03-30T06:00:00Z"],
        }
    ),
]
Day = Annotated[
    date,
    BeforeValidator(_day),
    WithJsonSchema(
        {"type": "string", "format": "date", "description": "Years 1900-2199.", "examples": ["2026-03-30"]}
    ),
]
# Stamps we serve as the text we stored (`2026-03-30T06:00:00.000Z`): typed as what they are for
# clients, without re-parsing what we wrote ourselves.
InstantText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
DayText = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]


def _time_zone(value: str) -> str:
    # Membership in the zone catalogue, not ZoneInfo(value): ZoneInfo also accepts paths like "../etc".
    if value not in _zones():
        raise ValueError("must be an IANA time zone such as Europe/Warsaw")
    return value


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


TimeZoneName = Annotated[str, Field(examples=["Europe/Warsaw"]), AfterValidator(_time_zone)]
