"""The `notification-reports` queue: ACS delivery reports and inbound SMS (Event Grid, one event a
message; the embedded channel publishes the same), through `shared.notifications.api.parse_report`.

* **Delivered**: the notification's record becomes `delivered`, with `notification.delivered`.
* **Failed** (a non-delivery report): the failure is recorded on its attempt; if that was the
  notification's first channel it falls back once (the next channel's intent is written and a send
  is queued at once: the dispatcher resumes it), else the notification is `failed` with
  `notification.failed`.
* **Inbound SMS**: `STOP` withdraws SMS consent of every patient with that number, `START`
  restores it (a patient-registry write, audited), `HELP` gets the short answer; each gets its
  reply by SMS, from any number: HELP's answer is one fixed text that never looks the number up,
  and a STOP/START from a number no patient has changes nothing but is answered the same way (a
  reply never tells whether a number is a patient's). Other texts are ignored.

Reports find their record by the SMS's tag (`<patient id>|<notification id>`) or, for e-mail, by
the operation id through a lookup written when the e-mail was sent. Every report is idempotent: a
settled record is not moved back, a consent already as asked is not written again, and the reply's
notification id comes from the event id, so a redelivered keyword replies once (inside ACS's
repeatability window). Nothing here logs a number or a text.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from shared.followups.documents import Attempt, NotificationRecord
from shared.kernel.catalog import LOOKUPS
from shared.kernel.retry import retry
from shared.kernel.stored import Document, Stored
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.followups.service import Followups
    from shared.notifications.api import DeliveryReport, InboundSms

log = logging.getLogger("psc.followups")
EMAIL_LOOKUP_TTL = timedelta(days=7)  # longer than any e-mail report takes (Event Grid retries 24 h)

# The outbox partition and tag of a keyword reply that belongs to no patient: every HELP reply,
# and a STOP/START reply to a number no patient has. Never the number (a phone number's hash can be
# reversed by trying every number).
KEYWORD_REPLIES = "sms-keyword-replies"


class EmailOperation(Document):
    """An e-mail's ACS operation id -> its notification (`email-op:<operation id>` in lookups)."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["email-operation"] = "email-operation"
    patient_id: str
    notification_id: str
    ttl: int


async def remember_email(fu: Followups, operation_id: str, patient_id: str, notification_id: str) -> None:
    await Stored(fu.store, LOOKUPS, EmailOperation).upsert(
        EmailOperation(
            id=f"email-op:{operation_id}",
            patient_id=patient_id,
            notification_id=notification_id,
            ttl=int(EMAIL_LOOKUP_TTL.total_seconds()),
        )
    )


async def handle_report(fu: Followups, body: bytes) -> str:
    from shared.notifications.api import DeliveryReport, InboundSms, parse_report

    report = parse_report(body)
    if isinstance(report, DeliveryReport):
        return await _delivery(fu, report)
    if isinstance(report, InboundSms):
        return await _inbound(fu, report)
    return f"ignored:{report.reason}"


async def _owner(fu: Followups, report: DeliveryReport) -> tuple[str, str] | None:
    from shared.kernel.notify import split_tag

    if report.channel == "sms":
        return split_tag(report.tag)
    found = await Stored(fu.store, LOOKUPS, EmailOperation).read_or_none(
        f"email-op:{report.provider_message_id}"
    )
    return None if found is None else (found.patient_id, found.notification_id)


async def _delivery(fu: Followups, report: DeliveryReport) -> str:
    owner = await _owner(fu, report)
    if owner is None:
        return "unknown"
    patient_id, nid = owner
    outcome: dict[str, str] = {}

    async def step() -> None:
        ledger = await fu.partition.ledger(patient_id)
        record = await fu.partition.record(patient_id, nid)
        if record is None:
            outcome["done"] = "unknown"
            return
        index = _attempt_of(record, report)
        if index is None or record.attempts[index].outcome in ("delivered", "failed"):
            outcome["done"] = "duplicate"
            return
        attempts = list(record.attempts)
        at = stamp(report.at or fu.now())
        if report.outcome == "delivered":
            attempts[index] = attempts[index].model_copy(update={"outcome": "delivered"})
            status = "delivered" if record.status == "sent" and index == len(attempts) - 1 else record.status
            updated = record.changed(attempts=attempts, status=status)
            ledger = ledger.emit("notification.delivered", at, **_data(updated, attempts[index].channel))
            outcome["done"] = "delivered"
        else:
            reason = report.reason or "undelivered"
            attempts[index] = attempts[index].model_copy(update={"outcome": "failed", "reason": reason})
            fallback = await _fallback(fu, record, attempts[index].channel) if len(attempts) == 1 else None
            if fallback is not None:
                second = Attempt(channel=fallback, first_attempt_at=stamp(fu.now()))
                updated = record.changed(attempts=[*attempts, second], status="sending", due=stamp(fu.now()))
                outcome["done"] = "fallback"
            else:
                updated = record.changed(attempts=attempts, status="failed", reason=reason)
                ledger = ledger.emit(
                    "notification.failed", at, **_data(updated, attempts[index].channel), reason=reason
                )
                outcome["done"] = "failed"
        await fu.partition.commit(ledger, [updated])
        outcome["due"] = updated.due

    await retry(step)
    if outcome["done"] == "fallback":
        from shared.kernel.times import parse_stamp

        await fu.schedule(nid, patient_id, parse_stamp(outcome["due"]), attempt=2)
    log.info("delivery report", extra={"notification_id": nid, "outcome": outcome["done"]})
    return outcome["done"]


def _attempt_of(record: NotificationRecord, report: DeliveryReport) -> int | None:
    for index in range(len(record.attempts) - 1, -1, -1):
        attempt = record.attempts[index]
        if attempt.provider_message_id == report.provider_message_id:
            return index
    for index in range(len(record.attempts) - 1, -1, -1):
        if record.attempts[index].channel == report.channel and record.attempts[index].outcome == "accepted":
            return index
    return None


async def _fallback(fu: Followups, record: NotificationRecord, failed: str) -> str | None:
    from shared.followups.service import channels_for

    policy = await fu.policies.reminder_policy()
    patient = await fu.patient(record.patient_id, policy)
    if patient is None:
        return None
    candidate = channels_for(fu, policy, patient).fallback_after(failed)  # type: ignore[arg-type]
    return None if candidate is None else candidate.channel


def _data(record: NotificationRecord, channel: str) -> dict[str, Any]:
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


async def _inbound(fu: Followups, sms: InboundSms) -> str:
    """A keyword from any number gets its reply; only STOP/START from a patient's number change
    anything. HELP is the same fixed text for every sender (in the keyword's language: AYUDA is
    answered in Spanish), so its reply never tells whether the number belongs to a patient; a
    STOP/START from a number no patient has changes no consent and is answered like a patient's
    (in the keyword's language). Logged by the event id only."""
    from shared.notifications.api import keyword_language

    if sms.keyword is None:
        return "ignored:no-keyword"
    keyword = sms.keyword.lower()
    language = keyword_language(sms.text)
    patients: list[str] = []
    if keyword != "help":
        patients, patient_language = await _consent_by_sms(fu, sms.sender, keyword == "start")
        language = language or patient_language
    if fu.notifier is None:
        return f"{keyword}:no-reply"
    await _reply(fu, sms, keyword, language, patients[0] if patients else KEYWORD_REPLIES)
    # The event's id (Event Grid's; the queue message's id) and how many patients it concerned.
    log.info("sms keyword", extra={"outcome": keyword, "message_id": sms.event_id, "count": len(patients)})
    return keyword if patients or keyword == "help" else f"{keyword}:unknown-sender"


async def _consent_by_sms(fu: Followups, sender: str, wanted: bool) -> tuple[list[str], str | None]:
    """Set SMS consent of every patient with `sender`'s number (a registry write, audited, only
    where it changes); their ids and the first one's language."""
    from shared.followups.service import FOLLOWUPS_ACTOR
    from shared.patients.api import PatientRegistry, patients_with_phone

    registry = PatientRegistry(fu.store, fu.clock)
    found: list[str] = []
    language = None
    for patient_id in await patients_with_phone(fu.store, sender):
        patient = await fu.patient(patient_id)
        if patient is None or patient.contacts.phone is None:
            continue
        found.append(patient_id)
        language = language or patient.language
        if patient.contacts.consent_sms != wanted:
            consent = {"sms": wanted, "email": patient.contacts.consent_email}
            await registry.write(
                FOLLOWUPS_ACTOR,
                patient_id,
                {"consent": consent},
                if_match=None,
                correlation_id=fu.correlation_id,
            )
    return found, language


async def _reply(fu: Followups, sms: InboundSms, keyword: str, language: str | None, owner: str) -> None:
    from shared.kernel.notify import Envelope
    from shared.notifications.api import render

    assert fu.notifier is not None
    reply = render(keyword, "sms", language=language)  # type: ignore[arg-type]
    envelope = Envelope(
        notification_id=f"keyword:{sms.event_id}",
        patient_id=owner,
        purpose="confirmation",
        subject_id=f"sms-{keyword}",
        first_attempt_at=sms.at or fu.now(),
    )
    await fu.notifier.send_sms(sms.sender, reply.text, envelope=envelope)
