"""The words of follow-ups: the reminder and survey policies administrators write, with their
ISO 8601 durations, and the shapes the follow-up routes answer. Pure: no store, no clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, WithJsonSchema, model_validator

from shared.kernel.ids import Id
from shared.kernel.text import Text
from shared.kernel.times import Instant, InstantText
from shared.kernel.week import ClockTime

Channel = Literal["sms", "email", "portal"]
# A reminder may come up to this long before the appointment; a survey this long after its cause.
MAX_OFFSET = timedelta(days=30)
MAX_DELAY = timedelta(days=30)
_SHAPE = re.compile(r"P(?=\d|T\d)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")
_DURATION_RULE = (
    "must be an ISO 8601 duration of days, hours, minutes or seconds such as P2D, PT2H or P1DT12H "
    "(no years or months: their length depends on the date), at most P30D"
)


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration as a timedelta (isodate parses; the rules are ours): weeks, days,
    hours, minutes and seconds only, never negative, at most 30 days. ValueError otherwise."""
    import isodate

    # isodate accepts "P", "PT" and a sign; the policy's shape is the strict subset below.
    if not _SHAPE.fullmatch(text):
        raise ValueError(_DURATION_RULE)
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError, TypeError, OverflowError):
        raise ValueError(_DURATION_RULE) from None
    # isodate answers a Duration (not a timedelta) for years and months, whose length varies.
    if not isinstance(value, timedelta) or value < timedelta(0) or value > MAX_OFFSET:
        raise ValueError(_DURATION_RULE)
    return value


def _duration(text: str) -> str:
    parse_duration(text)
    return text


IsoDuration = Annotated[
    str,
    Field(
        examples=["P2D", "PT2H"],
        min_length=3,
        max_length=32,
        description=_DURATION_RULE,
        json_schema_extra={"format": "duration"},
    ),
    AfterValidator(_duration),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class QuietHours(_Strict):
    """No reminder or survey between `start` and `end` on the patient's clock (may wrap midnight)."""

    start: ClockTime
    end: ClockTime


class Cap(_Strict):
    """How many follow-ups (reminders and surveys; confirmations are never capped) a patient gets
    per day and per ISO week on their own clock."""

    perDay: int = Field(1, ge=1, le=10)
    perWeek: int = Field(3, ge=1, le=50)

    @model_validator(mode="after")
    def _week_holds_a_day(self) -> Cap:
        if self.perWeek < self.perDay:
            raise ValueError("perWeek must be at least perDay")
        return self


def _all_channels() -> list[Channel]:
    return ["sms", "email", "portal"]


DEFAULT_QUIET_HOURS = QuietHours(start="21:00", end="08:00")


class ReminderPolicy(_Strict):
    """When reminders go (`offsets` before the start, each an ISO 8601 duration) and on which
    channels (the allowed ones in fallback order; the patient's preferred channel goes first when
    allowed). Quiet hours default to 21:00-08:00; a patient's own quiet hours win."""

    offsets: list[IsoDuration] = Field(default_factory=lambda: ["P1D"], max_length=5)
    channels: list[Channel] = Field(default_factory=_all_channels, min_length=1, max_length=3)
    quietHours: QuietHours = Field(default_factory=lambda: DEFAULT_QUIET_HOURS)
    cap: Cap = Field(default_factory=Cap)

    @model_validator(mode="after")
    def _distinct(self) -> ReminderPolicy:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        if len({parse_duration(o) for o in self.offsets}) != len(self.offsets):
            raise ValueError("offsets must be distinct durations")
        if any(parse_duration(o) <= timedelta(0) for o in self.offsets):
            raise ValueError("an offset must be longer than zero")
        return self

    def offset_durations(self) -> list[tuple[str, timedelta]]:
        return [(offset, parse_duration(offset)) for offset in self.offsets]


class SurveyTrigger(_Strict):
    enabled: bool = False
    delay: IsoDuration = "PT1H"


class SurveyPolicy(_Strict):
    """Surveys after a conversation a human handled and after a visit (`appointment.fulfilled`),
    each after its delay, unless the patient had one within `capDays`."""

    afterConversation: SurveyTrigger = Field(default_factory=SurveyTrigger)
    afterVisit: SurveyTrigger = Field(default_factory=SurveyTrigger)
    capDays: int = Field(30, ge=0, le=365)


class HtmlPage(RootModel[str]):
    """A small HTML page (a link's button, or what the link did), not JSON."""


class SurveyQuestion(BaseModel):
    id: Literal["csat", "nps", "comment"]
    type: Literal["rating", "text"]
    min: int | None = None
    max: int | None = None
    optional: bool | None = None
    text: str


class Survey(BaseModel):
    """A survey as the patient's page shows it, in their language (en, pl, es; else English)."""

    language: str
    questions: list[SurveyQuestion]


class SurveyAnswer(_Strict):
    """The answers: satisfaction 1-5, likelihood to recommend 0-10, an optional comment (kept
    with the answer, never in an event or a log)."""

    csat: int = Field(ge=1, le=5)
    nps: int = Field(ge=0, le=10)
    comment: Text | None = Field(None, max_length=2000)


class SurveyAnswered(BaseModel):
    status: Literal["answered"]


Purpose = Literal["reminder", "confirmation", "survey"]


class InboxEntry(BaseModel):
    id: str
    purpose: Purpose
    subjectId: str
    subject: str | None = None
    text: str
    links: dict[str, str] = {}
    createdAt: InstantText
    readAt: InstantText | None = None


class Inbox(BaseModel):
    """The patient portal's inbox, newest first (at most 100)."""

    items: list[InboxEntry]


class DevOutboxQuery(_Strict):
    patientId: Id


# Schema only (served values come from our own records): what a recipient looks like.
Recipient = Annotated[
    str, WithJsonSchema({"type": "string", "pattern": r"^(\+[1-9][0-9]{6,14}|[^@\s]+@[^@\s]+)$"})
]


class DevOutboxItem(BaseModel):
    id: str
    patientId: str
    purpose: Purpose
    subjectId: str
    channel: Channel
    to: Recipient | None = Field(
        None, description="The phone number (E.164) or e-mail address; none for the portal inbox."
    )
    text: str
    links: dict[str, str] = {}
    createdAt: InstantText
    status: Literal["sent", "delivered", "failed", "read"]


class DevOutbox(BaseModel):
    """Everything the embedded channel would have sent to one patient, oldest first."""

    items: list[DevOutboxItem]


class SurveyReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    from_: Instant = Field(alias="from", description="Inclusive start (surveys sent from).")
    to: Instant = Field(description="Exclusive end; at most 93 days after `from`.")

    @model_validator(mode="after")
    def _window(self) -> SurveyReportQuery:
        if not isinstance(self.from_, datetime) or not isinstance(self.to, datetime):
            return self
        if self.to <= self.from_:
            raise ValueError("to must be after from")
        if self.to - self.from_ > timedelta(days=93):
            raise ValueError("the window is at most 93 days")
        return self


class SurveyFigures(BaseModel):
    id: str | None = Field(None, description="The queue, agent or provider (absent in the totals).")
    sent: int
    answered: int
    responseRate: float | None = Field(None, description="answered / sent; none when nothing was sent.")
    csat: float | None = Field(
        None,
        description="CSAT (docs/KPIS.md): the share 0-1 of answers that rated satisfaction 4 or 5; "
        "none when nothing was answered.",
    )
    meanScore: float | None = Field(
        None, description="The mean satisfaction score (1-5) of the answers; none when nothing was answered."
    )
    nps: float | None = Field(None, description="Net promoter score -100..100: % of 9-10 minus % of 0-6.")


class SurveyAnswerView(BaseModel):
    subjectId: str
    answeredAt: InstantText
    csat: int
    nps: int
    comment: str | None = None
    queueId: str | None = None
    agentId: str | None = None
    providerId: str | None = None


class SurveyReport(BaseModel):
    """Surveys sent in the window, their answers and response rates in total and per queue, agent
    and provider (a conversation's survey counts for its queue and agent, a visit's for its
    provider). `answers`: at most 500, newest first."""

    totals: SurveyFigures
    byQueue: list[SurveyFigures]
    byAgent: list[SurveyFigures]
    byProvider: list[SurveyFigures]
    answers: list[SurveyAnswerView]
