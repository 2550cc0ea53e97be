"""A patient's recent follow-ups for the unified patient view (shared/workspace/summary.py): the
newest notifications that went out and the newest survey answers, each from one query of the
patient's own partition of `notifications` (never cross-partition), newest first. Ids, purposes,
statuses, stamps and scores only: never a text, a number or an address; the survey comment is
returned here and dropped by the view for every reader but a supervisor."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from shared.followups.documents import NotificationRecord, Purpose, Status, SurveyAnswerDocument
from shared.kernel.catalog import NOTIFICATIONS
from shared.kernel.documents import Query, where
from shared.kernel.stored import Stored
from shared.kernel.times import InstantText

if TYPE_CHECKING:
    from shared.kernel.documents import DocumentStore


class PatientNotification(BaseModel):
    """One notification that went out (ids and stamps; its text and recipient are never kept)."""

    id: str = Field(description="The notification id (`reminder:<appointment>:<version>:<offset>` ...).")
    purpose: Purpose
    kind: str
    channel: str | None = Field(None, description="The channel that carried it: sms, email or portal.")
    status: Status
    subjectId: str = Field(description="The appointment or conversation it is about.")
    subjectVersion: int | None = None
    sentAt: InstantText
    answer: str | None = Field(None, description="The patient's answer through its link (`confirmed`, ...).")
    answeredAt: InstantText | None = None


class PatientSurveyAnswer(BaseModel):
    notificationId: str
    subjectId: str = Field(description="The conversation or appointment the survey asked about.")
    csat: int = Field(description="Satisfaction, 1-5.")
    nps: int = Field(description="Likelihood to recommend, 0-10.")
    sentAt: InstantText | None = None
    answeredAt: InstantText
    comment: str | None = Field(None, description="The patient's own words (PHI): supervisors only.")


def _notification(record: NotificationRecord) -> PatientNotification:
    return PatientNotification(
        id=record.notification_id,
        purpose=record.purpose,
        kind=record.kind,
        channel=record.channel,
        status=record.status,
        subjectId=record.subject_id,
        subjectVersion=record.subject_version,
        sentAt=record.sent_at or "",
        answer=record.answer,
        answeredAt=record.answered_at,
    )


def _answer(doc: SurveyAnswerDocument) -> PatientSurveyAnswer:
    return PatientSurveyAnswer(
        notificationId=doc.notification_id,
        subjectId=doc.subject_id,
        csat=doc.csat,
        nps=doc.nps,
        sentAt=doc.sent_at,
        answeredAt=doc.answered_at,
        comment=doc.comment,
    )


async def recent_followups(
    store: DocumentStore, patient_id: str, *, notifications: int, answers: int
) -> tuple[list[PatientNotification], list[PatientSurveyAnswer]]:
    """The patient's `notifications` newest sent notifications (scheduled, skipped and cancelled
    ones never went and are left out) and `answers` newest survey answers: two in-partition
    queries, run together. `sentAt` is filtered as defined before ordering by it, so Cosmos DB and
    the embedded store agree on items without it."""
    sent = Query(
        conditions=(where("type", "=", "notification"), where("sentAt", "defined")),
        order_by=(("sentAt", True),),
    )
    answered = Query(conditions=(where("type", "=", "survey-answer"),), order_by=(("answeredAt", True),))
    records, found = await asyncio.gather(
        Stored(store, NOTIFICATIONS, NotificationRecord).query(
            sent, partition_key=patient_id, max_items=notifications
        ),
        Stored(store, NOTIFICATIONS, SurveyAnswerDocument).query(
            answered, partition_key=patient_id, max_items=answers
        ),
    )
    return [_notification(r) for r in records.items], [_answer(a) for a in found.items]
