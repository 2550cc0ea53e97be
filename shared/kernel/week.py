"""Wall-clock times of the week, as queues' operating hours and providers' calendars write them:
`{"mon": [["08:00", "12:00"], ...]}` with `HH:MM` times and `24:00` ending a day."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = re.compile(r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")


def _hhmm(value: str) -> str:
    if not _HHMM.fullmatch(value):
        raise ValueError("must be a time HH:MM (24-hour; 24:00 ends a day)")
    return value


def minutes_of(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


ClockTime = Annotated[
    str, Field(examples=["08:00"], json_schema_extra={"pattern": _HHMM.pattern}), AfterValidator(_hhmm)
]
