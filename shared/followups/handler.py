"""The follow-ups' consumer of the `events` topic (subscription `followups`, sessions on, so each
appointment's and conversation's events come in order).

* `appointment.booked` / `.rescheduled`: the reminders of this version are planned
  (shared/followups/planner.py) and scheduled on the `followups` queue, with a confirmation sent at
  once; the previous version's pending reminders are cancelled (their sequence numbers are kept in
  the appointment's plan) and marked `cancelled`.
* `appointment.cancelled`: pending reminders cancelled, a confirmation of the cancellation sent.
* `appointment.fulfilled`: a survey after the visit (`afterVisit`), when the policy says so.
* `appointment.noshow`: pending reminders are past anyway; the plan notes the status.
* `appointment.merged` (a provisional patient merged into another, shared/scheduling/merge.py):
  re-planned, not moved. The old patient's pending reminders are cancelled and its plan takes the
  merged version (a send that slipped through is dropped by the version check); the survivor gets
  the reminders still ahead for the merged version, on its own contacts, consent, quiet hours and
  cap, and no confirmation (the patient did nothing). Moving the records would need writes across
  two partitions and new queue messages anyway (a send names its patient's partition).
* `conversation.closed` by a human (`handled`): a survey after the conversation.

**Idempotent.** Records are written before their sends are scheduled, so a send always finds its
record; the plan, with the (version, n) of the last event applied, is written after, so an event
redelivered after a crash in between is applied again (the same records, the same message ids)
and one redelivered after the plan is written changes nothing. A send scheduled twice this way
finds its record settled the second time (the dispatcher's job). No PHI in any log line.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.followups.documents import AppointmentPlan, NotificationRecord, plan_id, record_id
from shared.followups.planner import plan_reminders
from shared.followups.service import Followups
from shared.kernel.retry import retry
from shared.kernel.times import parse_stamp, stamp

if TYPE_CHECKING:
    from shared.followups.model import ReminderPolicy
    from shared.followups.service import PatientFacts

log = logging.getLogger("psc.followups")

HANDLED = frozenset(
    {
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.cancelled",
        "appointment.fulfilled",
        "appointment.noshow",
        "appointment.merged",
        "conversation.closed",
    }
)


def position(envelope: dict[str, Any]) -> tuple[int, int]:
    """(version, n) of an event from its id `<aggregate id>:<version>.<n>`."""
    version = int(envelope["version"])
    tail = str(envelope["id"]).rsplit(":", 1)[-1]
    _, _, n = tail.partition(".")
    return version, int(n) if n.isdigit() else 1


async def handle_event(fu: Followups, envelope: dict[str, Any]) -> str:
    """Apply one event; answers what was done (for tests and a log line of ids)."""
    kind = envelope.get("type")
    if kind not in HANDLED:
        return "ignored"
    if kind == "conversation.closed":
        return await _conversation_closed(fu, envelope)
    return await retry(lambda: _appointment(fu, envelope))


def reminder_id(appointment_id: str, version: int, occasion: str) -> str:
    return f"reminder:{appointment_id}:{version}:{occasion}"


def confirmation_id(appointment_id: str, version: int) -> str:
    return f"confirmation:{appointment_id}:{version}"


def survey_id(subject_id: str) -> str:
    return f"survey:{subject_id}"


async def _appointment(fu: Followups, envelope: dict[str, Any]) -> str:
    data = envelope.get("data") or {}
    patient_id = data.get("patientId")
    appointment_id = str(envelope["aggregateId"])
    if not isinstance(patient_id, str) or not patient_id:
        return "no-patient"
    version, n = position(envelope)
    plan = await fu.partition.plan(patient_id, appointment_id)
    if plan is not None and (plan.version, plan.n) >= (version, n):
        return "duplicate"
    status = str(envelope["type"]).split(".", 1)[1]
    if status == "merged":
        return await _merged(fu, envelope, version, n)
    now = fu.now()
    at = str(envelope.get("at") or stamp(now))
    start = str(data.get("start") or (plan.start if plan else at))
    provider_id = str(data.get("providerId") or (plan.provider_id if plan else ""))
    records: list[NotificationRecord] = []
    due: dict[str, Any] = {}

    # What the previous version scheduled and has not sent is cancelled, whatever comes next.
    superseded = await _superseded(fu, patient_id, plan, now)

    if status in ("booked", "rescheduled", "cancelled"):
        policy = await fu.policies.reminder_policy()
        patient = await fu.patient(patient_id, policy)
        if patient is None:
            return "no-patient"
        if status != "cancelled":
            planned = _reminders(patient, policy, appointment_id, version, start, provider_id, now)
            records += planned
            due.update({r.notification_id: parse_stamp(r.due) for r in planned if r.status == "scheduled"})
        nid = confirmation_id(appointment_id, version)
        records.append(
            NotificationRecord(
                id=record_id(nid),
                patient_id=patient_id,
                notification_id=nid,
                purpose="confirmation",
                kind=status,
                subject_id=appointment_id,
                subject_version=version,
                occasion=f"v{version}",
                due=stamp(now),
                created_at=stamp(now),
                attributes={"providerId": provider_id},
            )
        )
        due[nid] = now
    elif status == "fulfilled":
        survey = await fu.policies.survey_policy()
        if survey.afterVisit.enabled:
            from shared.followups.model import parse_duration

            when = now + parse_duration(survey.afterVisit.delay)
            await _record_survey(
                fu, _survey_record(patient_id, appointment_id, when, now, {"providerId": provider_id})
            )

    ledger = await fu.partition.ledger(patient_id)
    await fu.partition.commit(ledger, [*superseded, *records])
    scheduled: dict[str, int | None] = {}
    for nid, when in due.items():
        scheduled[nid] = await fu.schedule(nid, patient_id, when)
    new_plan = AppointmentPlan(
        id=plan_id(appointment_id),
        patient_id=patient_id,
        appointment_id=appointment_id,
        version=version,
        n=n,
        status=status,
        start=start,
        provider_id=provider_id,
        conversation_id=data.get("conversationId"),
        scheduled={k: v for k, v in scheduled.items() if k.startswith("reminder:")},
    )
    ledger = await fu.partition.ledger(patient_id)
    await fu.partition.commit(ledger, [new_plan])
    log.info(
        "follow-ups planned",
        extra={"appointment_id": appointment_id, "version": version, "status": status, "sends": len(due)},
    )
    return status


def _reminders(
    patient: PatientFacts,
    policy: ReminderPolicy,
    appointment_id: str,
    version: int,
    start: str,
    provider_id: str,
    now: datetime,
) -> list[NotificationRecord]:
    """One record per offset of the policy: scheduled for its due time, or skipped with a reason."""
    records = []
    for reminder in plan_reminders(
        parse_stamp(start), now, policy.offset_durations(), patient.quiet, patient.zone
    ):
        nid = reminder_id(appointment_id, version, reminder.occasion)
        records.append(
            NotificationRecord(
                id=record_id(nid),
                patient_id=patient.patient_id,
                notification_id=nid,
                purpose="reminder",
                kind="reminder",
                subject_id=appointment_id,
                subject_version=version,
                occasion=reminder.occasion,
                status="scheduled" if reminder.due else "skipped",
                reason=reminder.skipped,
                due=stamp(reminder.due or now),
                created_at=stamp(now),
                attributes={"providerId": provider_id},
            )
        )
    return records


async def _merged(fu: Followups, envelope: dict[str, Any], version: int, n: int) -> str:
    """The appointment now names the survivor (`patientId`); `previousPatientId` held its plan."""
    data = envelope.get("data") or {}
    survivor, previous = str(data["patientId"]), data.get("previousPatientId")
    appointment_id = str(envelope["aggregateId"])
    now = fu.now()
    old = await fu.partition.plan(previous, appointment_id) if isinstance(previous, str) else None
    if old is not None and isinstance(previous, str) and (old.version, old.n) < (version, n):
        cancelled = await _superseded(fu, previous, old, now)
        moved = old.changed(version=version, n=n, status="merged", scheduled={})
        await fu.partition.commit(await fu.partition.ledger(previous), [*cancelled, moved])
    status = str(data.get("status") or (old.status if old else "booked"))
    start = str(data.get("start") or (old.start if old else stamp(now)))
    provider_id = str(data.get("providerId") or (old.provider_id if old else ""))
    pending: list[NotificationRecord] = []
    if status == "booked":
        policy = await fu.policies.reminder_policy()
        patient = await fu.patient(survivor, policy)
        if patient is not None:
            planned = _reminders(patient, policy, appointment_id, version, start, provider_id, now)
            # A redelivery after a crash before the plan was written keeps what was since sent.
            current = {
                r.notification_id: await fu.partition.record(survivor, r.notification_id) for r in planned
            }
            fresh = [r for r in planned if current[r.notification_id] is None]
            await fu.partition.commit(await fu.partition.ledger(survivor), fresh)
            pending = [r for r in planned if (current[r.notification_id] or r).status == "scheduled"]
    scheduled = {
        r.notification_id: await fu.schedule(r.notification_id, survivor, parse_stamp(r.due)) for r in pending
    }
    plan = AppointmentPlan(
        id=plan_id(appointment_id),
        patient_id=survivor,
        appointment_id=appointment_id,
        version=version,
        n=n,
        status=status,
        start=start,
        provider_id=provider_id,
        conversation_id=old.conversation_id if old else None,
        scheduled=scheduled,
    )
    await fu.partition.commit(await fu.partition.ledger(survivor), [plan])
    log.info("follow-ups moved", extra={"appointment_id": appointment_id, "version": version})
    return "merged"


async def _superseded(
    fu: Followups, patient_id: str, plan: AppointmentPlan | None, now: Any
) -> list[NotificationRecord]:
    if plan is None:
        return []
    cancelled = []
    for nid, sequence in plan.scheduled.items():
        await fu.cancel(sequence)
        record = await fu.partition.record(patient_id, nid)
        if record is not None and record.status == "scheduled":
            cancelled.append(record.changed(status="cancelled", reason="superseded"))
    return cancelled


def _survey_record(
    patient_id: str, subject_id: str, due: Any, now: Any, attributes: dict[str, str]
) -> NotificationRecord:
    nid = survey_id(subject_id)
    return NotificationRecord(
        id=record_id(nid),
        patient_id=patient_id,
        notification_id=nid,
        purpose="survey",
        kind="survey",
        subject_id=subject_id,
        occasion="once",
        due=stamp(due),
        created_at=stamp(now),
        attributes=attributes,
    )


async def _conversation_closed(fu: Followups, envelope: dict[str, Any]) -> str:
    data = envelope.get("data") or {}
    if data.get("handled") is not True:
        return "not-handled"
    survey = await fu.policies.survey_policy()
    if not survey.afterConversation.enabled:
        return "surveys-off"
    from shared.conversations.api import conversation_patient
    from shared.followups.model import parse_duration

    conversation_id = str(envelope["aggregateId"])
    patient_id = await conversation_patient(fu.store, conversation_id)
    if not patient_id:
        return "no-patient"
    now = fu.now()
    when = now + parse_duration(survey.afterConversation.delay)
    attributes = {k: str(data[k]) for k in ("queueId", "agentId") if data.get(k)}
    record = _survey_record(patient_id, conversation_id, when, now, attributes)

    return await _record_survey(fu, record)


async def _record_survey(fu: Followups, record: NotificationRecord) -> str:
    """Record a survey once per subject and schedule it; a redelivery finds the record and, while
    it is still scheduled, schedules it again (the same message id: the bus drops the copy inside
    its window, and the dispatcher sends a record once in any case)."""

    async def step() -> NotificationRecord:
        existing = await fu.partition.record(record.patient_id, record.notification_id)
        if existing is not None:
            return existing
        ledger = await fu.partition.ledger(record.patient_id)
        await fu.partition.commit(ledger, [record])
        return record

    stored = await retry(step)
    if stored.status != "scheduled":
        return "duplicate"
    await fu.schedule(stored.notification_id, stored.patient_id, parse_stamp(stored.due))
    return "survey"
