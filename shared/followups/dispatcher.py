"""Sending one follow-up when its `followups` queue message comes due: record the intent, choose
the channel, send, record the outcome, fall back once.

**Never twice.** The record (`n:<notification id>` in the patient's partition) is the truth:

1. a settled record (sent, delivered, failed, skipped, cancelled) is never sent again, so a
   redelivered or duplicated message changes nothing;
2. the intent (channel, `firstAttemptAt`) is written before the send; a message redelivered after
   a crash between the send and the outcome finds the record `sending` and repeats the *same*
   send (same notification id, same first-attempt time), which ACS (and the embedded channel)
   answers with the first answer instead of sending again, inside its repeatability window (see
   shared/kernel/notify.py for the window that remains);
3. the outcome, the cap counters and the `notification.sent`/`.failed` event are one batch with
   the ledger.

**Version check.** A reminder or confirmation whose appointment has a newer version (moved,
cancelled) is dropped (`cancelled`, reason `superseded`), even if its cancellation was lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.followups.documents import TERMINAL, Attempt, InboxItem, NotificationRecord
from shared.followups.planner import Counts, survey_time
from shared.followups.service import Followups, PatientFacts, channels_for
from shared.kernel.errors import PreconditionFailed
from shared.kernel.retry import retry
from shared.kernel.times import parse_stamp, stamp

if TYPE_CHECKING:
    from shared.followups.documents import AppointmentPlan
    from shared.followups.links import LinkKind
    from shared.followups.model import ReminderPolicy
    from shared.notifications.api import ChannelPlan, RenderedText
    from shared.notifications.channels import Candidate

log = logging.getLogger("psc.followups")

SURVEY_LINK_DAYS = 14
EARLY = timedelta(seconds=5)  # a scheduled message is on time within a few seconds


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    reason: str | None = None
    provider_message_id: str | None = None
    inbox: InboxItem | None = None


async def dispatch(fu: Followups, body: dict[str, Any]) -> str:
    """Handle one `followups` message (`notificationId`, `patientId`, `due`); answers what happened."""
    return await retry(lambda: _dispatch(fu, body["patientId"], body["notificationId"], body["due"]))


async def _dispatch(fu: Followups, patient_id: str, nid: str, due: str) -> str:
    record = await fu.partition.record(patient_id, nid)
    if record is None:
        return "unknown"
    if record.status in TERMINAL:
        return "settled"
    if record.due != due:
        return "stale"  # a survey the cap moved left this send behind; its new one will come
    now = fu.now()
    plan = None
    if record.purpose != "survey" or record.subject_id.startswith("appt"):
        plan = await fu.partition.plan(patient_id, record.subject_id)
    if record.purpose != "survey" and _superseded(record, plan):
        await _settle(fu, record, "cancelled", "superseded")
        return "superseded"
    policy = await fu.policies.reminder_policy()
    patient = await fu.patient(patient_id, policy)
    if patient is None:
        await _settle(fu, record, "skipped", "no-patient")
        return "no-patient"
    if record.status == "scheduled" and record.purpose != "confirmation":
        held = await _capped(fu, record, patient, policy, now)
        if held is not None:
            return held
    channels = channels_for(fu, policy, patient)
    if record.status == "sending":
        attempt = record.attempts[-1]
    else:
        first = channels.first
        if first is None:
            await _settle(fu, record, "skipped", "no-channel")
            return "no-channel"
        attempt = Attempt(channel=first.channel, first_attempt_at=stamp(now))
        record = await _intent(fu, record, attempt)
    outcome = await _send(fu, record, attempt, channels, patient, plan)
    if outcome.accepted:
        await _sent(fu, record, attempt, outcome, patient)
        return f"sent:{attempt.channel}"
    fallback = channels.fallback_after(attempt.channel) if len(record.attempts) == 1 else None
    if fallback is None:
        await _failed(fu, record, attempt, outcome.reason or "rejected")
        return "failed"
    second = Attempt(channel=fallback.channel, first_attempt_at=stamp(fu.now()))
    record = await _intent(fu, record, second, failed=outcome.reason or "rejected")
    outcome = await _send(fu, record, second, channels, patient, plan)
    if outcome.accepted:
        await _sent(fu, record, second, outcome, patient)
        return f"sent:{second.channel}"
    await _failed(fu, record, second, outcome.reason or "rejected")
    return "failed"


def _superseded(record: NotificationRecord, plan: AppointmentPlan | None) -> bool:
    if plan is None or record.subject_version is None:
        return False
    if plan.version > record.subject_version:
        return True
    return record.purpose == "reminder" and plan.status in ("cancelled", "noshow", "fulfilled")


async def _capped(
    fu: Followups, record: NotificationRecord, patient: PatientFacts, policy: ReminderPolicy, now: datetime
) -> str | None:
    """None when the cap lets the follow-up go now; else what was done (skipped or deferred)."""
    ledger = await fu.partition.ledger(patient.patient_id)
    counts = Counts(ledger.days, ledger.weeks)
    per_day, per_week = policy.cap.perDay, policy.cap.perWeek
    if record.purpose == "reminder":
        if counts.allows(now, patient.zone, per_day, per_week):
            return None
        await _settle(fu, record, "skipped", "cap")
        return "cap"
    surveys = await fu.policies.survey_policy()
    if ledger.last_survey_at is not None and now - parse_stamp(ledger.last_survey_at) < timedelta(
        days=surveys.capDays
    ):
        await _settle(fu, record, "skipped", "survey-cap-days")
        return "survey-cap-days"
    reserved = [parse_stamp(r.due) for r in await fu.partition.pending_reminders(patient.patient_id)]
    when = survey_time(now, counts, patient.zone, per_day, per_week, reserved=reserved, quiet=patient.quiet)
    if when is None:
        await _settle(fu, record, "skipped", "cap")
        return "cap"
    if when <= now + EARLY:
        return None
    moved = record.changed(due=stamp(when))
    await fu.partition.commit(ledger, [moved])
    await fu.schedule(record.notification_id, record.patient_id, when)
    return "deferred"


async def _intent(
    fu: Followups, record: NotificationRecord, attempt: Attempt, *, failed: str | None = None
) -> NotificationRecord:
    """Write the intent of `attempt` before anything is sent (`failed`: the previous attempt's
    reason, for a fallback). A concurrent dispatcher that won the race answers PreconditionFailed:
    the retry re-reads and finds the record sending (it repeats the same send) or settled."""
    attempts = list(record.attempts)
    if failed is not None and attempts:
        attempts[-1] = attempts[-1].model_copy(update={"outcome": "failed", "reason": failed})
    updated = record.changed(status="sending", attempts=[*attempts, attempt], channel=attempt.channel)
    ledger = await fu.partition.ledger(record.patient_id)
    current = await fu.partition.record(record.patient_id, record.notification_id)
    if current is None or current.store_etag != record.store_etag:
        raise PreconditionFailed("the record changed since it was read")
    await fu.partition.commit(ledger, [updated])
    return updated


async def _send(
    fu: Followups,
    record: NotificationRecord,
    attempt: Attempt,
    channels: ChannelPlan,
    patient: PatientFacts,
    plan: AppointmentPlan | None,
) -> Outcome:
    from shared.kernel.notify import Envelope
    from shared.notifications.api import SmsTooLong

    candidate = next((c for c in channels.candidates if c.channel == attempt.channel), None)
    if candidate is None:
        return Outcome(False, "no-consent")
    links = await _links(fu, record, plan)
    try:
        rendered = await _render(fu, record, attempt.channel, patient, plan, links)
    except SmsTooLong:
        return Outcome(False, "too-long")
    if attempt.channel == "portal":
        item = InboxItem(
            id=f"inbox:{record.notification_id}",
            patient_id=record.patient_id,
            notification_id=record.notification_id,
            purpose=record.purpose,
            subject_id=record.subject_id,
            subject=rendered.subject,
            text=rendered.text,
            links=rendered.links or {},
            created_at=stamp(fu.now()),
        )
        return Outcome(True, inbox=item)
    if fu.notifier is None:
        return Outcome(False, "channel-not-configured")
    envelope = Envelope(
        notification_id=record.notification_id,
        patient_id=record.patient_id,
        purpose=record.purpose,
        subject_id=record.subject_id,
        first_attempt_at=parse_stamp(attempt.first_attempt_at),
        links=rendered.links or {},
    )
    to = _address(candidate)
    if attempt.channel == "sms":
        result = await fu.notifier.send_sms(to, rendered.text, envelope=envelope)
    else:
        from shared.followups.reports import remember_email
        from shared.kernel.notify import email_operation_id

        await remember_email(
            fu, email_operation_id(record.notification_id), record.patient_id, record.notification_id
        )
        result = await fu.notifier.send_email(
            to, rendered.subject or "", rendered.text, rendered.html, envelope=envelope
        )
    return Outcome(result.accepted, result.failure_reason, result.provider_message_id)


def _address(candidate: Candidate) -> str:
    assert candidate.to is not None, "sms and e-mail candidates carry an address"
    return candidate.to


# The signed one-use links each kind of text carries (the portal's `reschedule` is not one:
# docs/ARCHITECTURE.md "Follow-ups", Links); a cancellation's confirmation carries none.
SIGNED_LINKS: dict[str, tuple[LinkKind, ...]] = {
    "reminder": ("confirm", "cancel"),
    "booked": ("cancel",),
    "rescheduled": ("cancel",),
}


async def _links(fu: Followups, record: NotificationRecord, plan: AppointmentPlan | None) -> dict[str, str]:
    """The links the text carries, minted once per notification (the same on every retry)."""
    if record.kind != "survey" and record.kind not in SIGNED_LINKS:
        return {}
    if not fu.links.enabled:
        from shared.kernel.errors import ConfigError

        raise ConfigError("PSC_LINK_SIGNING_KEY is required to send reminders, confirmations and surveys")
    now = fu.now()
    base = f"{fu.public_base_url}/api/links/"
    if record.kind == "survey":
        expires = parse_stamp(record.created_at) + timedelta(days=SURVEY_LINK_DAYS + 14)
        token = await fu.links.mint(
            "survey",
            notification_id=record.notification_id,
            patient_id=record.patient_id,
            subject_id=record.subject_id,
            version=0,
            expires=expires,
            now=now,
        )
        return {"survey": f"{fu.public_base_url}/api/surveys/{token}"}
    start = parse_stamp(plan.start) if plan is not None else now + timedelta(days=1)
    found: dict[str, str] = {}
    for kind in SIGNED_LINKS[record.kind]:
        token = await fu.links.mint(
            kind,
            notification_id=record.notification_id,
            patient_id=record.patient_id,
            subject_id=record.subject_id,
            version=record.subject_version or 0,
            expires=start,
            now=now,
        )
        found[kind] = base + token
    found["reschedule"] = f"{fu.portal_base_url}/appointments/{record.subject_id}"
    return found


async def _render(
    fu: Followups,
    record: NotificationRecord,
    channel: str,
    patient: PatientFacts,
    plan: AppointmentPlan | None,
    links: dict[str, str],
) -> RenderedText:
    from shared.notifications.api import render

    facts = None
    if record.purpose != "survey" and plan is not None:
        facts = await fu.appointment_facts(plan.provider_id, plan.start, patient.zone)
    elif record.purpose != "survey":
        raise PreconditionFailed("the appointment's plan is not written yet")
    return render(
        record.kind,  # type: ignore[arg-type]
        channel,  # type: ignore[arg-type]
        language=patient.language,
        appointment=facts,
        links=links,
    )


async def _sent(
    fu: Followups, record: NotificationRecord, attempt: Attempt, outcome: Outcome, patient: PatientFacts
) -> None:
    now = fu.now()
    done = attempt.model_copy(
        update={"outcome": "accepted", "provider_message_id": outcome.provider_message_id}
    )

    async def step() -> None:
        ledger = await fu.partition.ledger(record.patient_id)
        current = await fu.partition.record(record.patient_id, record.notification_id)
        if current is None or current.status in TERMINAL:
            return
        # The portal inbox is ours: a message stored in it has reached the patient's channel, as
        # an e-mail accepted by the patient's mail server has (docs/KPIS.md), so it is delivered
        # at once, in the same batch.
        inbox = attempt.channel == "portal"
        attempts = [
            *current.attempts[:-1],
            done.model_copy(update={"outcome": "delivered"}) if inbox else done,
        ]
        first = current.sent_at is None
        # `sentAt` is the notification's first send: a fallback after a non-delivery report sends
        # again on another channel but keeps it, so the KPIs count the notification once, in the
        # bucket of its first send (docs/KPIS.md).
        updated = current.changed(
            status="delivered" if inbox else "sent",
            attempts=attempts,
            sent_at=current.sent_at or stamp(now),
            channel=attempt.channel,
        )
        if record.purpose != "confirmation" and first:
            counts = Counts(ledger.days, ledger.weeks).counted(now, patient.zone, now)
            ledger = ledger.changed(days=dict(counts.days), weeks=dict(counts.weeks))
        if record.purpose == "survey" and first:
            ledger = ledger.changed(last_survey_at=stamp(now))
        data = _event(updated, attempt.channel)
        ledger = ledger.emit("notification.sent", stamp(now), **data, **({} if first else {"fallback": True}))
        if inbox:
            ledger = ledger.emit("notification.delivered", stamp(now), **data)
        if record.purpose == "survey" and first:
            ledger = ledger.emit("survey.sent", stamp(now), **data)
        await fu.partition.commit(ledger, [updated, *([outcome.inbox] if outcome.inbox else [])])

    await retry(step)
    log.info(
        "follow-up sent",
        extra={
            "notification_id": record.notification_id,
            "purpose": record.purpose,
            "channel": attempt.channel,
        },
    )


async def _failed(fu: Followups, record: NotificationRecord, attempt: Attempt, reason: str) -> None:
    now = fu.now()

    async def step() -> None:
        ledger = await fu.partition.ledger(record.patient_id)
        current = await fu.partition.record(record.patient_id, record.notification_id)
        if current is None or current.status in TERMINAL:
            return
        attempts = [
            *current.attempts[:-1],
            attempt.model_copy(update={"outcome": "failed", "reason": reason}),
        ]
        updated = current.changed(status="failed", reason=reason, attempts=attempts)
        ledger = ledger.emit(
            "notification.failed", stamp(now), **_event(updated, attempt.channel), reason=reason
        )
        await fu.partition.commit(ledger, [updated])

    await retry(step)
    log.info("follow-up failed", extra={"notification_id": record.notification_id, "reason": reason})


async def _settle(fu: Followups, record: NotificationRecord, status: str, reason: str) -> None:
    """Settle without sending (skipped, cancelled), with its reason; no event: nothing was sent."""

    async def step() -> None:
        ledger = await fu.partition.ledger(record.patient_id)
        current = await fu.partition.record(record.patient_id, record.notification_id)
        if current is None or current.status in TERMINAL:
            return
        await fu.partition.commit(ledger, [current.changed(status=status, reason=reason)])

    await retry(step)
    log.info("follow-up not sent", extra={"notification_id": record.notification_id, "reason": reason})


def _event(record: NotificationRecord, channel: str) -> dict[str, Any]:
    """A notification event's attributes (docs/KPIS.md): ids, stamps and codes, never PHI."""
    return {
        "notificationId": record.notification_id,
        "patientId": record.patient_id,
        "purpose": record.purpose,
        "kind": record.kind,
        "channel": channel,
        "subjectId": record.subject_id,
        "sentAt": record.sent_at,
        **record.attributes,
    }
