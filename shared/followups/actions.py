"""What the one-use links of a reminder or a confirmation do, without sign-in:
`GET /api/links/{token}` answers a small page with one button and never acts (mail scanners and
link previews fetch every link); `POST /api/links/{token}` acts once: `confirm` notes the
patient's confirmation on the reminder (event `notification.answered`; confirmations carry no
`confirm`), `cancel` cancels the appointment as the patient would (the appointment's own rules,
events and audit; the cancellation's confirmation follows through the events topic). A used link
answers 409, an expired one 410, an unknown or forged one 404; a link of an appointment that
changed since it was sent (another version) answers 409 and stays unused.
Every use is audited under the patient."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from shared.auth.principal import Principal, Role
from shared.followups.documents import record_id
from shared.followups.links import LinkDocument
from shared.kernel.catalog import APPOINTMENTS
from shared.kernel.errors import Conflict, NotFound
from shared.kernel.retry import retry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.followups.service import Followups

_TITLES = {
    "confirm": ("Confirm your appointment", "Confirm"),
    "cancel": ("Cancel your appointment", "Cancel the appointment"),
}
_DONE = {"confirm": "Thank you: your appointment is confirmed.", "cancel": "Your appointment is cancelled."}
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


def _page(title: str, body: str) -> bytes:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1.1rem;padding:.6rem 1.2rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


async def _link(fu: Followups, token: str) -> LinkDocument:
    doc = await fu.links.find(token, fu.now())
    if doc.kind == "survey":
        raise NotFound("No such link.")  # a survey's token opens the survey, not an action
    return doc


async def link_page(fu: Followups, token: str) -> bytes:
    """The page of a confirm or cancel link: what the button does, nothing about the patient."""
    doc = await _link(fu, token)
    title, button = _TITLES[doc.kind]
    form = (
        f'<form method="post" action="{html.escape(token)}">'
        f'<button type="submit">{html.escape(button)}</button></form>'
    )
    return _page(title, form)


def link_principal(patient_id: str) -> Principal:
    """Who acts through a link: the patient it was sent to (the token is their proof)."""
    return Principal(
        subject=f"link:{patient_id}",
        name=None,
        roles=frozenset({str(Role.PATIENT)}),
        patient_id=patient_id,
        provider="system",
    )


async def use_link(fu: Followups, token: str) -> dict[str, Any]:
    """Act once; answers `{"action", "appointmentId", "status"}`."""
    from shared.audit.api import record_access
    from shared.scheduling.api import AppointmentDocument, Scheduling

    doc = await _link(fu, token)
    appointment = await Stored(fu.store, APPOINTMENTS, AppointmentDocument).read_or_none(
        doc.subject_id, doc.subject_id
    )
    if appointment is None or appointment.tombstone:
        raise NotFound("No such link.")
    if appointment.version != doc.subject_version or appointment.status != "booked":
        raise Conflict("The appointment changed since this message was sent: see your latest messages.")
    now = fu.now()
    used = await fu.links.use(doc, now, doc.kind)  # first: of two clicks at once, one acts
    actor = link_principal(doc.patient_id)
    try:
        if doc.kind == "cancel":
            await Scheduling(fu.store, fu.bus, fu.clock).cancel(actor, doc.subject_id, fu.correlation_id)
            status = "cancelled"
        else:
            status = "confirmed"
        await _answer(fu, doc, status)
    except Exception:
        await fu.links.unuse(used)  # the click did nothing: it may be tried again
        raise
    await record_access(
        fu.store,
        fu.clock,
        actor=actor,
        action="update",
        resource=f"links/{doc.kind}/appointments/{doc.subject_id}",
        patient_id=doc.patient_id,
        correlation_id=fu.correlation_id,
    )
    return {"action": doc.kind, "appointmentId": doc.subject_id, "status": status}


async def _answer(fu: Followups, doc: LinkDocument, status: str) -> None:
    """Note the answer on the reminder, with `notification.answered` (ids only)."""

    async def step() -> None:
        ledger = await fu.partition.ledger(doc.patient_id)
        record = await fu.partition.records.read_or_none(record_id(doc.notification_id), doc.patient_id)
        if record is None or record.answer is not None:
            return
        at = stamp(fu.now())
        ledger = ledger.emit(
            "notification.answered",
            at,
            notificationId=record.notification_id,
            patientId=record.patient_id,
            purpose=record.purpose,
            subjectId=record.subject_id,
            answer=status,
            sentAt=record.sent_at,
            **record.attributes,
        )
        await fu.partition.commit(ledger, [record.changed(answer=status, answered_at=at)])

    await retry(step)


def done_page(result: dict[str, Any]) -> bytes:
    return _page("Done", f"<p>{html.escape(_DONE[result['action']])}</p>")
