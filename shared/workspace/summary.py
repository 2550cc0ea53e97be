"""The unified patient view (`GET /api/patients/{patientId}/summary`, `GET /api/me/summary`): one
screen of what an agent needs about a patient, built from point reads and single-partition
queries only (no cross-partition query, whatever the store holds):

* the record: 1 point read of `patients` (clinical fields only for `ClinicalUser`);
* appointments: 2 in-partition queries of the patient's list in `lists` (the next ones, the last
  ones), a point read per appointment and one per distinct provider (its name and time zone);
* conversations: 1 in-partition query of the patient's conversation list in `lists`, a point read
  per conversation (open ones first, then the recent closed ones);
* follow-ups: 2 in-partition queries of the patient's partition of `notifications`, through the
  follow-ups' public module (the newest sent notifications, the newest survey answers);
* 1 audit record (`read` of `patients/<id>/summary`).

Who sees what: staff (Agent, Supervisor) any patient, a patient only themselves (another id is
404, as if absent); the record's clinical fields and a conversation's agent-side fields only for
staff, clinical fields only with `ClinicalUser`. A survey answer's free-text comment only for
supervisors: it is the patient's own words, which the supervisors' survey report already shows
them; agents and the patient get the scores (the issue grants free text to no one else).
"""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from shared.audit.api import record_access
from shared.auth.principal import Principal, Role
from shared.conversations.api import ConversationDocument, Status, Urgency, conversations
from shared.followups.api import PatientNotification, PatientSurveyAnswer, recent_followups
from shared.kernel.catalog import PATIENTS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import NotFound
from shared.kernel.observability import mark_phi
from shared.kernel.stored import Stored
from shared.kernel.times import InstantText, parse_stamp, stamp
from shared.patients.api import PatientDocument, PatientRecord, check_patient_id, record_of
from shared.scheduling.api import (
    AppointmentDocument,
    AppointmentStatus,
    ProviderDocument,
    appointments_around,
)

UPCOMING = 5
RECENT_APPOINTMENTS = 5
CONVERSATIONS = 10
NOTIFICATIONS = 10
SURVEY_ANSWERS = 5


class SummaryAppointment(BaseModel):
    id: str
    status: AppointmentStatus
    providerId: str
    providerName: str | None = Field(description="None when the provider's calendar is gone.")
    start: InstantText
    end: InstantText | None = None
    timeZone: str = Field(description="The provider's IANA time zone (where the appointment is).")
    localStart: InstantText = Field(description="The start on the provider's wall clock, with its offset.")
    localEnd: InstantText | None = None
    conversationId: str | None = None


class SummaryConversation(BaseModel):
    id: str
    status: Status
    createdAt: InstantText
    updatedAt: InstantText | None = None
    closedAt: InstantText | None = None
    lastSeq: int = 0
    queueId: str | None = Field(None, description="Staff only.")
    agentId: str | None = Field(None, description="Staff only.")
    urgency: Urgency | None = Field(None, description="Staff only.")
    specialty: str | None = Field(None, description="Staff only.")


class PatientSummary(BaseModel):
    patient: PatientRecord
    upcomingAppointments: list[SummaryAppointment] = Field(
        description=f"The next {UPCOMING} at most, soonest first (cancelled ones left out)."
    )
    recentAppointments: list[SummaryAppointment] = Field(
        description=f"The last {RECENT_APPOINTMENTS} at most, latest first, any status."
    )
    openConversations: list[SummaryConversation] = Field(description="Not closed, newest first.")
    recentConversations: list[SummaryConversation] = Field(description="Closed, newest first.")
    notifications: list[PatientNotification] = Field(
        description=f"The last {NOTIFICATIONS} sent at most, latest first (never a text or an address)."
    )
    surveyAnswers: list[PatientSurveyAnswer] = Field(
        description=f"The last {SURVEY_ANSWERS} at most, latest first; `comment` for supervisors only."
    )
    at: InstantText = Field(description="When the view was read; upcoming means from then.")


def _local(instant: str | None, zone: ZoneInfo) -> str | None:
    if instant is None:
        return None
    return parse_stamp(instant).astimezone(zone).isoformat(timespec="seconds")


def _appointment(doc: AppointmentDocument, providers: dict[str, ProviderDocument]) -> SummaryAppointment:
    provider = providers.get(doc.provider_id)
    zone_name = provider.time_zone if provider is not None else "UTC"
    zone = ZoneInfo(zone_name)
    return SummaryAppointment(
        id=doc.id,
        status=doc.status,
        providerId=doc.provider_id,
        providerName=provider.name if provider is not None else None,
        start=doc.start,
        end=doc.end,
        timeZone=zone_name,
        localStart=_local(doc.start, zone) or "",
        localEnd=_local(doc.end, zone),
        conversationId=doc.conversation_id,
    )


def _conversation(doc: ConversationDocument, *, staff: bool) -> SummaryConversation:
    view = SummaryConversation(
        id=doc.id,
        status=doc.status,
        createdAt=doc.created_at,
        updatedAt=doc.updated_at,
        closedAt=doc.closed_at,
        lastSeq=doc.last_seq,
    )
    if staff:
        view.queueId = doc.queue_id
        view.agentId = doc.agent_id
        view.urgency = Urgency(doc.urgency) if doc.urgency else None
        view.specialty = doc.specialty
    return view


async def patient_summary(
    store: DocumentStore,
    clock: Clock,
    principal: Principal,
    patient_id: str,
    correlation_id: str | None,
) -> PatientSummary:
    """The view of `patient_id` as `principal` may see it; `NotFound` for no such patient (and for
    a patient asking about anyone but themselves)."""
    check_patient_id(patient_id)
    staff = principal.has(Role.AGENT) or principal.has(Role.SUPERVISOR)
    if not staff and principal.patient_id != patient_id:
        raise NotFound("No such patient.")
    now = stamp(clock.now())
    record, (soon, past, providers), docs, (sent, answers) = await asyncio.gather(
        Stored(store, PATIENTS, PatientDocument).read_or_none(patient_id),
        appointments_around(store, patient_id, now, upcoming=UPCOMING, recent=RECENT_APPOINTMENTS),
        conversations.for_patient(store, patient_id, max_items=CONVERSATIONS),
        recent_followups(store, patient_id, notifications=NOTIFICATIONS, answers=SURVEY_ANSWERS),
    )
    if record is None:
        raise NotFound("No such patient.")
    patient = record_of(record, clinical=staff and principal.is_clinical)
    mark_phi(patient.name, patient.email, patient.phone, patient.dateOfBirth, patient.clinicalNotes)
    if not principal.has(Role.SUPERVISOR):
        answers = [a.model_copy(update={"comment": None}) for a in answers]
    mark_phi(*(a.comment for a in answers))
    await record_access(
        store,
        clock,
        actor=principal,
        action="read",
        resource=f"patients/{patient_id}/summary",
        patient_id=patient_id,
        correlation_id=correlation_id,
    )
    return PatientSummary(
        patient=patient,
        upcomingAppointments=[_appointment(doc, providers) for doc in soon],
        recentAppointments=[_appointment(doc, providers) for doc in past],
        openConversations=[_conversation(d, staff=staff) for d in docs if d.status != Status.CLOSED],
        recentConversations=[_conversation(d, staff=staff) for d in docs if d.status == Status.CLOSED],
        notifications=sent,
        surveyAnswers=answers,
        at=now,
    )
