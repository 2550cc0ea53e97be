"""Scheduling: provider calendars, slot arithmetic and the appointment models (FHIR R4 Schedule /
Slot / Appointment semantics).

Everything here is pure: no store, no clock. Slots are laid out on the provider's *wall clock*
(`slotMinutes` apart from each range start, in the provider's IANA zone) and then resolved to UTC
instants, so a day across a DST change is right:

* a wall time inside the skipped hour (spring forward) does not exist, so a slot starting, ending
  or spanning there is not offered (it would be shorter than `slotMinutes`);
* a wall time inside the repeated hour (fall back) is resolved to its first occurrence only
  (`fold=0`), so it is offered once;
* a slot lasts `slotMinutes` of real time from its UTC start. Resolving the wall grid this way is
  monotonic, so slots never overlap even across a transition.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.kernel.ids import Id, check_id
from shared.kernel.text import Line, Text
from shared.kernel.times import (
    Day,
    Instant,
    InstantText,
    TimeZoneName,
    parse_day,
    parse_instant,
    parse_stamp,
    stamp,
)
from shared.kernel.week import WEEKDAYS, ClockTime, Weekday, minutes_of

MAX_SEARCH_DAYS = 62
DEFAULT_SLOT_PAGE = 200
MAX_SLOT_PAGE = 1000

# Provider ids end up inside FHIR ids (`[A-Za-z0-9\-\.]{1,64}`) together with a slot's start, so
# they are Ids held to FHIR's alphabet, leaving room for the 15-character start suffix.
PROVIDER_ID_PATTERN = r"^[A-Za-z0-9.-]{1,48}$"
_FHIR_SAFE = re.compile(PROVIDER_ID_PATTERN)
PROVIDER_ID_RULE = "must be 1-48 letters, digits, '-' or '.' (not . or ..)"


def check_provider_id(value: str) -> str:
    try:
        check_id(value)
    except ValueError:
        raise ValueError(PROVIDER_ID_RULE) from None
    if not _FHIR_SAFE.match(value):
        raise ValueError(PROVIDER_ID_RULE)
    return value


ProviderId = Annotated[
    str,
    AfterValidator(check_provider_id),
    WithJsonSchema({"type": "string", "pattern": _FHIR_SAFE.pattern, "maxLength": 48}),
]

# FHIR R4 Appointment.status values this service moves between (the brief's statuses).
Status = Literal["booked", "arrived", "fulfilled", "cancelled", "noshow", "entered-in-error"]
ACTIVE: frozenset[str] = frozenset({"booked", "arrived", "fulfilled", "noshow"})
# Who may move an appointment where. Reschedule keeps "booked"; everything else is terminal.
TRANSITIONS: dict[str, frozenset[str]] = {
    "booked": frozenset({"arrived", "noshow", "cancelled", "fulfilled"}),
    "arrived": frozenset({"fulfilled"}),
}


TimeRange = Annotated[list[ClockTime], Field(min_length=2, max_length=2, examples=[["08:00", "12:00"]])]


def _check_ranges(ranges: list[list[str]]) -> list[list[str]]:
    spans = sorted((minutes_of(a), minutes_of(b)) for a, b in ranges)
    for start, end in spans:
        if start >= end:
            raise ValueError("each range must start before it ends")
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise ValueError("ranges must not overlap")
    return ranges


DayHours = Annotated[list[TimeRange], Field(max_length=24), AfterValidator(_check_ranges)]


class _Strict(BaseModel):
    # defer_build: validators compile on first use, not while the worker indexes functions.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class DateException(_Strict):
    """Other hours on one date in the provider's zone; `hours: []` closes the date."""

    date: Day
    hours: DayHours = Field(default_factory=list)


class BookingRules(_Strict):
    maxDaysAhead: int = Field(
        default=90, ge=0, le=730, description="Latest bookable local date, in days from today."
    )
    minNoticeMinutes: int = Field(
        default=0, ge=0, le=30 * 24 * 60, description="How late a booking may be made."
    )


class Provider(_Strict):
    """A provider's calendar (the body of `PUT /api/manage/providers/{providerId}`)."""

    name: Line = Field(min_length=1, max_length=200)
    specialty: Line = Field(min_length=1, max_length=100)
    timeZone: TimeZoneName
    slotMinutes: int = Field(ge=5, le=480)
    weeklyHours: dict[Weekday, DayHours] = Field(default_factory=dict)
    exceptions: list[DateException] = Field(default_factory=list, max_length=1000)
    bookingRules: BookingRules = Field(default_factory=BookingRules)

    @field_validator("exceptions")
    @classmethod
    def _one_exception_per_date(cls, value: list[DateException]) -> list[DateException]:
        if len({e.date for e in value}) != len(value):
            raise ValueError("at most one exception per date")
        return value


class ProviderView(Provider):
    id: str


class ProviderList(BaseModel):
    items: list[ProviderView]
    continuationToken: str | None = None


class ProviderListQuery(_Strict):
    specialty: Line | None = Field(default=None, min_length=1, max_length=100)
    limit: int = Field(default=50, ge=1, le=100)
    continuationToken: str | None = Field(default=None, max_length=2000)


def instant_or_day(value: Any) -> Any:
    """A query bound: a local date (`2026-03-29`) or an ISO-8601 instant with an offset, both
    within the supported years (shared/kernel/times.py)."""
    if isinstance(value, str):
        text = value.strip()
        return parse_day(text) if len(text) == 10 else parse_instant(text)
    return value


class SlotQuery(_Strict):
    """`from`/`to`: instants with an offset, or dates meaning the provider's local days (`to`
    inclusive); at most 62 days apart. Results come in pages of `maxItems` (default 200, at most
    1000); pass `continuationToken` from a page to get the next."""

    model_config = ConfigDict(populate_by_name=True)

    start: datetime | date = Field(alias="from")
    end: datetime | date = Field(alias="to")
    maxItems: int = Field(default=DEFAULT_SLOT_PAGE, ge=1, le=MAX_SLOT_PAGE)
    continuationToken: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return instant_or_day(value)


class Slot(BaseModel):
    start: InstantText
    end: InstantText


class FreeSlots(BaseModel):
    providerId: str
    timeZone: str = Field(description="The provider's IANA time zone (slot times are UTC).")
    slots: list[Slot]
    continuationToken: str | None = Field(
        default=None, description="More free slots in the window: pass it back to get them."
    )


class BookingRequest(_Strict):
    providerId: ProviderId
    start: Instant
    patientId: Id | None = Field(
        default=None, description="Required for staff; a patient books for themselves."
    )
    reason: Text = Field(min_length=1, max_length=500)
    conversationId: Id | None = Field(
        default=None, description="Staff only: the conversation (of this patient) the booking was made in."
    )


class RescheduleRequest(_Strict):
    start: Instant


class StatusRequest(_Strict):
    status: Literal["arrived", "fulfilled", "noshow"]


class Appointment(BaseModel):
    id: str
    status: Status
    providerId: str
    patientId: str
    start: InstantText
    end: InstantText
    reason: str | None = None
    conversationId: str | None = None
    bookedBy: str | None = None
    created: InstantText | None = None
    updated: InstantText | None = None


class AppointmentList(BaseModel):
    items: list[Appointment]
    continuationToken: str | None = None


class AppointmentListQuery(_Strict):
    limit: int = Field(default=50, ge=1, le=100)
    continuationToken: str | None = Field(default=None, max_length=2000)


class AppointmentSearch(_Strict):
    """Exactly one of: `patientId` (that patient's appointments) or `providerId` with `date` (the
    provider's day: a date on the provider's own wall clock). Both are ordered by start."""

    model_config = ConfigDict(populate_by_name=True)

    patientId: Id | None = None
    providerId: ProviderId | None = None
    day: Day | None = Field(default=None, alias="date", description="YYYY-MM-DD, with providerId")
    maxItems: int = Field(default=50, ge=1, le=100)
    continuationToken: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_form(self) -> AppointmentSearch:
        if (self.patientId is None) == (self.providerId is None):
            raise ValueError("give either patientId, or providerId with date")
        if self.providerId is not None and self.day is None:
            raise ValueError("date is required with providerId")
        if self.patientId is not None and self.day is not None:
            raise ValueError("date goes with providerId, not patientId")
        return self


# ---- calendar arithmetic ------------------------------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """What slot math needs from a provider, validated already."""

    zone: ZoneInfo
    slot: timedelta
    weekly: dict[int, tuple[tuple[int, int], ...]]  # weekday (Mon=0) -> ((start min, end min), ...)
    exceptions: dict[date, tuple[tuple[int, int], ...]]
    max_days_ahead: int
    min_notice: timedelta

    @staticmethod
    def of(provider: Provider | dict[str, Any]) -> Calendar:
        data = provider.model_dump(mode="json") if isinstance(provider, Provider) else provider

        def spans(ranges: list[list[str]]) -> tuple[tuple[int, int], ...]:
            return tuple(sorted((minutes_of(a), minutes_of(b)) for a, b in ranges))

        rules = data.get("bookingRules") or {}
        return Calendar(
            zone=ZoneInfo(data["timeZone"]),
            slot=timedelta(minutes=int(data["slotMinutes"])),
            weekly={WEEKDAYS.index(day): spans(r) for day, r in (data.get("weeklyHours") or {}).items()},
            exceptions={
                date.fromisoformat(e["date"]): spans(e.get("hours") or [])
                for e in data.get("exceptions") or []
            },
            max_days_ahead=int(rules.get("maxDaysAhead", 90)),
            min_notice=timedelta(minutes=int(rules.get("minNoticeMinutes", 0))),
        )

    def hours_on(self, day: date) -> tuple[tuple[int, int], ...]:
        if day in self.exceptions:
            return self.exceptions[day]
        return self.weekly.get(day.weekday(), ())

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def resolve(self, day: date, minute: int) -> datetime | None:
        """The UTC instant of wall time `minute` on `day` (1440 = the next midnight), or None
        inside a skipped hour."""
        day, minute = day + timedelta(days=minute // 1440), minute % 1440
        wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)
        instant = wall.astimezone(UTC)  # fold=0: the first of a repeated wall time
        if instant.astimezone(self.zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
            return None  # the wall time does not exist (spring forward)
        return instant

    def _first_instant_from(self, day: date, minute: int) -> datetime:
        """The instant of wall time `minute`, or if it was skipped, the end of the skip."""
        for later in range(minute, minute + 24 * 60):  # a skip is at most hours long
            instant = self.resolve(day, later)
            if instant is not None:
                return instant
        raise AssertionError("no existing wall time within a day")  # pragma: no cover

    def slots_on(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """Slots of one local day, in order, as UTC (start, end)."""
        step = int(self.slot.total_seconds() // 60)
        for first, last in self.hours_on(day):
            minute = first
            while minute + step <= last:
                start = self.resolve(day, minute)
                # A slot reaching into or across the skipped hour would overlap the next one in
                # real time: it does not exist. Ending exactly where the hour is skipped is fine.
                if start is not None and start + self.slot <= self._first_instant_from(day, minute + step):
                    yield start, start + self.slot
                minute += step

    def slots_between(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Slots whose start lies in [start, end)."""
        day, last = self.local_date(start), self.local_date(end)
        while day <= last:
            for slot in self.slots_on(day):
                if start <= slot[0] < end:
                    yield slot
            day += timedelta(days=1)

    def slot_at(self, start: datetime) -> tuple[datetime, datetime] | None:
        """The slot starting exactly at `start`, if the calendar has one."""
        start = start.astimezone(UTC)
        for slot in self.slots_on(self.local_date(start)):
            if slot[0] == start:
                return slot
        return None

    def bookable_window(self, now: datetime) -> tuple[datetime, date]:
        """Earliest bookable start, and the last bookable local date."""
        return now + self.min_notice, self.local_date(now) + timedelta(days=self.max_days_ahead)

    def rule_violation(self, start: datetime, now: datetime) -> str | None:
        earliest, last_day = self.bookable_window(now)
        if start < earliest:
            return (
                "The slot is too soon to book (minimum notice)."
                if start >= now
                else "The slot is in the past."
            )
        if self.local_date(start) > last_day:
            return "The slot is too far ahead to book."
        return None


def search_window(query: SlotQuery, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The query's [start, end) in UTC: dates are the provider's local days, `to` inclusive."""

    def bound(value: datetime | date, *, end: bool) -> datetime:
        if isinstance(value, datetime):
            return value
        day = value + timedelta(days=1) if end else value
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)

    start, end = bound(query.start, end=False), bound(query.end, end=True)
    if end <= start:
        raise ValueError("`to` must be after `from`")
    if end - start > timedelta(days=MAX_SEARCH_DAYS):
        raise ValueError(f"the range is limited to {MAX_SEARCH_DAYS} days")
    return start, end


def slot_id(provider_id: str, start: datetime) -> str:
    """Deterministic id of the slot document (also the FHIR Slot id): provider + UTC start."""
    return f"{provider_id}.{start.astimezone(UTC):%Y%m%dT%H%M}Z"


# ---- FHIR R4 views ------------------------------------------------------------------------------

FHIR_JSON = "application/fhir+json"
_FHIR_DATE = re.compile(r"^(eq|ge)?(\d{4}-\d{2}-\d{2}(T.+)?)$")


class FhirSlotQuery(_Strict):
    """FHIR Slot search: `schedule` (`Schedule/<providerId>` or the bare id) and `start`: a date
    (that local day of the provider) or `ge<instant>` (the 24 hours from it); `eq` is accepted as
    the default prefix. `status=free|busy` filters."""

    schedule: str = Field(min_length=1, max_length=100)
    start: str = Field(
        min_length=10,
        max_length=60,
        json_schema_extra={"pattern": _FHIR_DATE.pattern},
        description="A date (the provider's local day) or `ge` and an instant with an offset.",
        examples=["2026-03-30", "ge2026-03-30T06:00:00Z"],
    )
    status: Literal["free", "busy"] | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            return check_provider_id(value.removeprefix("Schedule/"))
        except ValueError:
            raise ValueError("must be Schedule/<providerId>") from None

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        match = _FHIR_DATE.match(value)
        if not match:
            raise ValueError("must be a date YYYY-MM-DD or ge<ISO-8601 instant>")
        instant_or_day(match.group(2))  # raises ValueError on a bad date or a naive instant
        return value

    def window(self) -> SlotQuery:
        match = _FHIR_DATE.match(self.start)
        assert match is not None  # validated
        bound = instant_or_day(match.group(2))
        if isinstance(bound, datetime):
            return SlotQuery.model_validate({"from": bound, "to": bound + timedelta(days=1)})
        return SlotQuery.model_validate({"from": bound, "to": bound})


class _Fhir(BaseModel):
    # FHIR resources may carry more than we write; the schema lists what we do write.
    model_config = ConfigDict(extra="allow", defer_build=True)


class FhirReference(_Fhir):
    reference: str


class FhirParticipant(_Fhir):
    actor: FhirReference
    required: Literal["required", "optional", "information-only"]
    status: Literal["accepted", "declined", "tentative", "needs-action"]


class FhirIdentifier(_Fhir):
    system: str
    value: str


class FhirText(_Fhir):
    text: str


class FhirMeta(_Fhir):
    lastUpdated: InstantText


class FhirAppointment(_Fhir):
    """A FHIR R4 Appointment (the fields this service fills)."""

    resourceType: Literal["Appointment"]
    id: str
    status: Status
    start: InstantText
    end: InstantText
    minutesDuration: int
    slot: list[FhirReference]
    participant: list[FhirParticipant]
    meta: FhirMeta | None = None
    created: InstantText | None = None
    reasonCode: list[FhirText] | None = None
    identifier: list[FhirIdentifier] | None = None


class FhirSlot(_Fhir):
    """A FHIR R4 Slot: a free (bookable) or busy slot of a provider's schedule."""

    resourceType: Literal["Slot"]
    id: str
    schedule: FhirReference
    status: Literal["free", "busy"]
    start: InstantText
    end: InstantText


class FhirSearch(_Fhir):
    mode: Literal["match", "include", "outcome"]


class FhirBundleEntry(_Fhir):
    fullUrl: str
    resource: FhirSlot
    search: FhirSearch


class FhirBundle(_Fhir):
    """A FHIR R4 searchset Bundle of Slots, by start."""

    resourceType: Literal["Bundle"]
    type: Literal["searchset"]
    total: int
    entry: list[FhirBundleEntry]


def fhir_appointment(item: dict[str, Any]) -> dict[str, Any]:
    """An appointment document as a FHIR R4 Appointment resource."""
    start, end = parse_stamp(item["start"]), parse_stamp(item["end"])
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": item["id"],
        "status": item["status"],
        "start": item["start"],
        "end": item["end"],
        "minutesDuration": int((end - start).total_seconds() // 60),
        "slot": [{"reference": f"Slot/{slot_id(item['providerId'], start)}"}],
        "participant": [
            {
                "actor": {"reference": f"Patient/{item['patientId']}"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": f"Practitioner/{item['providerId']}"},
                "required": "required",
                "status": "accepted",
            },
        ],
    }
    if item.get("updated"):
        resource["meta"] = {"lastUpdated": item["updated"]}
    if item.get("created"):
        resource["created"] = item["created"]
    if item.get("reason"):
        resource["reasonCode"] = [{"text": item["reason"]}]
    if item.get("conversationId"):
        resource["identifier"] = [{"system": "urn:psc:conversation", "value": item["conversationId"]}]
    return resource


def fhir_slot(provider_id: str, start: datetime, end: datetime, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "id": slot_id(provider_id, start),
        "schedule": {"reference": f"Schedule/{provider_id}"},
        "status": status,
        "start": stamp(start),
        "end": stamp(end),
    }


def fhir_searchset(resources: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }
