"""The follow-ups' documents, all in the `notifications` container partitioned by `/patientId`.

A patient's partition holds one aggregate, the **ledger** (`followups:<patientId>`): its version
counts the partition's changes and its ETag guards all of them, so every write of a notification
record, an appointment's reminder plan or an inbox item goes in one transactional batch with a
replace of the ledger (`Aggregates.replace(..., upserts=...)`), together with the events
(`notification.sent` ...) it causes. The ledger also keeps the cap counters. Policies live in the
partition `_config`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.kernel.outbox import Aggregate
from shared.kernel.stored import Document

CONFIG_PARTITION = "_config"
REMINDER_POLICY_ID = "policy:reminder"
SURVEY_POLICY_ID = "policy:survey"

Purpose = Literal["reminder", "confirmation", "survey"]
Status = Literal["scheduled", "sending", "sent", "delivered", "failed", "skipped", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"sent", "delivered", "failed", "skipped", "cancelled"})


class ReminderPolicyDocument(Document):
    type: Literal["reminder-policy"] = "reminder-policy"
    patient_id: str = CONFIG_PARTITION
    policy: dict[str, Any]
    updated_at: str


class SurveyPolicyDocument(Document):
    type: Literal["survey-policy"] = "survey-policy"
    patient_id: str = CONFIG_PARTITION
    policy: dict[str, Any]
    updated_at: str


def ledger_id(patient_id: str) -> str:
    return f"followups:{patient_id}"


class Ledger(Aggregate):
    """A patient's follow-up ledger: the partition's guard and the cap counters (`days`:
    `YYYY-MM-DD` -> count, `weeks`: `YYYY-Www` -> count, on the patient's clock; old keys pruned),
    and when the last survey went."""

    PARTITION_FIELD: ClassVar[str] = "patientId"

    type: Literal["followup-ledger"] = "followup-ledger"
    patient_id: str
    days: dict[str, int] = {}
    weeks: dict[str, int] = {}
    last_survey_at: str | None = None

    @property
    def aggregate_id(self) -> str:
        return self.patient_id


class Attempt(BaseModel):
    """One channel's attempt: `first_attempt_at` is fixed when the intent is recorded and sent
    again unchanged on every retry (ACS's repeatability), so a redelivery never sends twice."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="forbid"
    )

    channel: Literal["sms", "email", "portal"]
    first_attempt_at: str
    outcome: Literal["pending", "accepted", "failed", "delivered"] = "pending"
    reason: str | None = None
    provider_message_id: str | None = None


def record_id(notification_id: str) -> str:
    return f"n:{notification_id}"


class NotificationRecord(Document):
    """One notification (id `n:<purpose>:<subject>:<occasion>`): what it is about, when it is due,
    its status and the attempts. Ids and stamps only: the text is rendered at send time."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["notification"] = "notification"
    patient_id: str
    notification_id: str
    purpose: Purpose
    kind: str
    subject_id: str
    subject_version: int | None = None
    occasion: str
    status: Status = "scheduled"
    reason: str | None = None
    due: str
    created_at: str
    sequence_number: int | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    sent_at: str | None = None
    channel: str | None = None
    links: dict[str, str] = {}
    # The patient's answer through a link of this notification (`confirmed`, `cancelled`).
    answer: str | None = None
    answered_at: str | None = None
    # KPI attributes of the subject as they were (docs/KPIS.md): ids only.
    attributes: dict[str, str] = {}


def plan_id(appointment_id: str) -> str:
    return f"appt:{appointment_id}"


class AppointmentPlan(Document):
    """What follow-ups know of one appointment: the version last applied (with the event's n, the
    handler's watermark), its state and start, and the notifications scheduled for that version
    with their bus sequence numbers (to cancel them on a change)."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["appointment-plan"] = "appointment-plan"
    patient_id: str
    appointment_id: str
    version: int
    n: int
    status: str
    start: str
    provider_id: str
    conversation_id: str | None = None
    scheduled: dict[str, int | None] = {}


class InboxItem(Document):
    """A notification delivered to the patient portal's inbox."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["inbox"] = "inbox"
    patient_id: str
    notification_id: str
    purpose: Purpose
    subject_id: str
    subject: str | None = None
    text: str
    links: dict[str, str] = {}
    created_at: str
    read_at: str | None = None


class SurveyAnswerDocument(Document):
    """A patient's answers to one survey (`answer:<notification id>`): the comment is the
    patient's own words (PHI), kept here and in no event."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["survey-answer"] = "survey-answer"
    patient_id: str
    notification_id: str
    subject_id: str
    csat: int
    nps: int
    comment: str | None = None
    sent_at: str | None = None
    answered_at: str
    attributes: dict[str, str] = {}
