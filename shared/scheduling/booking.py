"""Scheduling: the provider registry, free-slot search, and booking / rescheduling / cancelling
appointments so that a slot can never be booked twice, however many function instances race.

Consistency (no read-then-write anywhere on the booking path):

* **The slot is the unit of consistency.** A taken slot is a document in `slots` (partition =
  provider) whose id is derived from the provider and the slot's UTC start (`slot_id`). Taking a
  slot is `create`, which the store refuses for an id that exists: of any number of concurrent
  bookings exactly one creates it, the others get 409.
* **Hold, then book** (FHIR Slot `busy-tentative` → `busy`). The slot document is created first, as
  a hold naming the appointment; then the appointment is written; then the hold is confirmed.
  A hold whose writer died is *stale* after `HOLD`; the next booking of that slot reclaims it, but
  only after making the dead writer's appointment write impossible: for a new booking it creates a
  tombstone under the appointment's id (so the late `create` conflicts), for a reschedule it
  replaces the appointment (so the late ETag-guarded `replace` fails). Whoever writes the
  appointment first wins; the other side backs off.
* **Reschedule** leases the appointment (an ETag-guarded `pending` marker, so two moves of one
  appointment cannot interleave), takes the new slot, moves the appointment with the lease's ETag,
  and only then releases the old slot. If the new slot is not free the lease is dropped and the
  appointment is untouched.
* Releasing a slot (cancel, the old slot of a reschedule) deletes it only if it still names this
  appointment, with the ETag read, so a release can never free someone else's booking.

Events (`appointment.booked`, `.rescheduled`, `.cancelled`, `.arrived`, `.fulfilled`,
`.noshow`: ids and times, never the reason) are written with the change that causes them, in one
transaction (shared/kernel/outbox.py), and reach the `events` topic through the relay: a change
never stands without its event, and a retried request that finds its change made writes none.
The reschedule lease, its release and a reclaim's tombstone or rewrite change nothing a reader
sees and write no event.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.auth.principal import Principal
from shared.kernel import lists
from shared.kernel.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    UnprocessableContent,
)
from shared.kernel.etags import IfMatch, IfMatchFailed, check_if_match
from shared.kernel.idempotency import IdempotencyRecord, fingerprint
from shared.kernel.observability import mark_phi
from shared.kernel.retry import Again, retry
from shared.kernel.times import parse_stamp, stamp
from shared.scheduling import index
from shared.scheduling.documents import AppointmentDocument, Pending, ProviderDocument
from shared.scheduling.holds import SlotHolds
from shared.scheduling.model import (
    TRANSITIONS,
    BookingRequest,
    Calendar,
    slot_id,
)
from shared.scheduling.providers import (
    _IDEMPOTENCY_KEY,
    _RETRIES,
    HOLD,
    IN_FLIGHT,
    _booked_id,
    _now_z,
    _patient_for,
    appointment_etag,
    check_appointment_id,
    with_event,
)

log = logging.getLogger("psc.scheduling")


@dataclass(frozen=True)
class Booked:
    item: AppointmentDocument
    replayed: bool = False


class Scheduling(SlotHolds):
    # ---- booking --------------------------------------------------------------------------------

    async def book(
        self,
        actor: Principal,
        request: BookingRequest,
        *,
        idempotency_key: str | None,
        correlation_id: str,
    ) -> Booked:
        mark_phi(request.reason)  # free text from the patient: masked if anything logs it
        patient_id = _patient_for(actor, request.patientId)
        conversation_id = None if actor.acts_as_patient_only else request.conversationId
        provider = await self._references(actor, request, patient_id, conversation_id)
        start = request.start
        lookup: IdempotencyRecord | None = None
        request_print = fingerprint(
            request.providerId, stamp(start), patient_id, request.reason, conversation_id or ""
        )
        if idempotency_key is not None:
            if not _IDEMPOTENCY_KEY.match(idempotency_key):
                raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters.")
            lookup = await self._bookings.read(actor.subject, idempotency_key)
            if lookup is not None:
                replay = await self._replay(actor, lookup, request_print, correlation_id)
                if replay is not None:
                    return replay
        calendar = Calendar.of(provider.body())
        slot = calendar.slot_at(start)
        if slot is None:
            raise Conflict("The provider has no slot starting at this time.")
        violation = calendar.rule_violation(slot[0], self._clock.now())
        if violation:
            raise Conflict(violation)

        created_lookup = False
        if idempotency_key is not None and lookup is None:
            lookup = await self._bookings.claim(
                actor.subject,
                idempotency_key,
                fingerprint=request_print,
                answer={"appointmentId": uuid.uuid4().hex},
            )
            created_lookup = lookup is not None
            if lookup is None:  # the same key, concurrently: continue the other request's booking
                lookup = await self._bookings.read(actor.subject, idempotency_key)
                if lookup is None or lookup.fingerprint != request_print:
                    raise Conflict("This Idempotency-Key was used for a different request.") from None
        appointment_id = _booked_id(lookup) or uuid.uuid4().hex

        try:
            await self._check_overlap(request.providerId, slot, appointment_id)
            held = await self._claim(request.providerId, slot, appointment_id)
        except Conflict:
            if created_lookup and lookup is not None and idempotency_key is not None:
                # The key bought nothing: a retry may try again from scratch.
                await self._bookings.release(actor.subject, idempotency_key, etag=lookup.etag)
            raise
        # Listed before it exists, after the hold: a booking that dies here leaves entries that
        # readers skip (no appointment, or a tombstone), never an appointment missing from lists.
        await lists.add(
            self._store,
            *index.appointment_entries(appointment_id, patient_id, request.providerId, stamp(slot[0])),
        )
        now = _now_z(self._clock)
        document = with_event(
            AppointmentDocument(
                id=appointment_id,
                status="booked",
                provider_id=request.providerId,
                patient_id=patient_id,
                start=stamp(slot[0]),
                end=stamp(slot[1]),
                reason=request.reason,
                conversation_id=conversation_id,
                booked_by=actor.subject,
                appointment_id=appointment_id,
                moves=0,
                created=now,
                updated=now,
            ),
            "booked",
            now,
        )
        try:
            item = await self._appointments.create(document)
        except Conflict:
            # Either a concurrent request with the same Idempotency-Key wrote it first, or the hold
            # went stale and a reclaimer tombstoned this id: then the slot is no longer ours.
            item = await self._appointments.read(appointment_id)
            if item.tombstone:
                await index.remove_appointment(
                    self._store, patient_id, request.providerId, stamp(slot[0]), appointment_id
                )
                raise Conflict(
                    "The hold on the slot expired before the booking completed; book again."
                ) from None
        await self._confirm(held)
        await self._audit(actor, "create", f"appointments/{appointment_id}", patient_id, correlation_id)
        log.info("appointment booked", extra={"appointment_id": appointment_id})
        return Booked(item)

    async def _references(
        self, actor: Principal, request: BookingRequest, patient_id: str, conversation_id: str | None
    ) -> ProviderDocument:
        """Everything a booking names must exist before anything is written: the patient (a
        patient's own record missing is 404; a staff request naming a missing one is 422, as are
        an unknown provider and a conversation that is not this patient's). Returns the provider."""
        from shared.conversations.api import conversation_patient
        from shared.patients.api import patient_exists

        errors = []
        if not await patient_exists(self._store, patient_id):
            if actor.acts_as_patient_only:
                raise NotFound("No such patient.")
            errors.append({"field": "body.patientId", "message": "is not a known patient"})
        if conversation_id is not None:
            about = await conversation_patient(self._store, conversation_id)
            if about is None:
                errors.append({"field": "body.conversationId", "message": "is not a known conversation"})
            elif about != patient_id:
                errors.append(
                    {"field": "body.conversationId", "message": "is not a conversation of this patient"}
                )
        try:
            provider = await self.provider(request.providerId)
        except NotFound:
            errors.append({"field": "body.providerId", "message": "is not a known provider"})
        if errors:
            raise UnprocessableContent(errors)
        return provider

    async def _replay(
        self, actor: Principal, lookup: IdempotencyRecord, fingerprint: str, correlation_id: str
    ) -> Booked | None:
        appointment_id = _booked_id(lookup)
        if lookup.fingerprint != fingerprint or appointment_id is None:
            raise Conflict("This Idempotency-Key was used for a different request.")
        item = await self._appointments.read_or_none(appointment_id)
        if item is None or item.tombstone:
            return None  # the first attempt never finished: carry on with its appointment id
        await self._audit(actor, "read", f"appointments/{appointment_id}", item.patient_id, correlation_id)
        return Booked(item, replayed=True)

    # ---- one appointment ------------------------------------------------------------------------

    async def _owned(self, actor: Principal, appointment_id: str) -> AppointmentDocument:
        check_appointment_id(appointment_id)
        item = await self._appointments.read_or_none(appointment_id)
        if item is None or item.tombstone:
            raise NotFound("No such appointment.")
        if actor.acts_as_patient_only and item.patient_id != actor.patient_id:
            raise NotFound("No such appointment.")  # indistinguishable from absence
        mark_phi(item.reason)
        return item

    async def read(self, actor: Principal, appointment_id: str, correlation_id: str) -> AppointmentDocument:
        item = await self._owned(actor, appointment_id)
        await self._audit(actor, "read", f"appointments/{appointment_id}", item.patient_id, correlation_id)
        return item

    async def reschedule(
        self,
        actor: Principal,
        appointment_id: str,
        start: datetime,
        correlation_id: str,
        *,
        if_match: IfMatch | None = None,
    ) -> AppointmentDocument:
        """Move a booked appointment. With `if_match` only if it has not changed since the caller
        read it and no other change of it is in flight (412 otherwise; without `if_match` a change
        in flight is a 409), unless it already starts there: a retry whose first answer was lost
        succeeds (RFC 9110 §13.1.1 allows a 2xx for a change already made)."""
        wanted = stamp(start)

        async def step() -> AppointmentDocument:
            item = await self._owned(actor, appointment_id)
            if item.start != wanted or item.status != "booked":
                check_if_match(if_match, appointment_etag(item), "appointment")
            if item.status != "booked":
                raise Conflict(f"A {item.status} appointment cannot be rescheduled.")
            if item.start == wanted:
                # Already there (a retry): finish unlisting the old place, change nothing else
                # (the move's event was written with the move).
                if item.moves > 0 and item.previous_start:
                    await index.remove_appointment(
                        self._store,
                        str(item.patient_id),
                        item.provider_id,
                        item.previous_start,
                        item.id,
                    )
                await self._audit(
                    actor, "read", f"appointments/{appointment_id}", item.patient_id, correlation_id
                )
                return item
            provider_id = item.provider_id
            calendar = Calendar.of((await self.provider(provider_id)).body())
            slot = calendar.slot_at(start)
            if slot is None:
                raise Conflict("The provider has no slot starting at this time.")
            now = self._clock.now()
            violation = calendar.rule_violation(slot[0], now)
            if violation:
                raise Conflict(violation)
            pending = item.pending
            if pending and parse_stamp(pending.at) + HOLD > now:
                if if_match is not None:
                    raise IfMatchFailed(IN_FLIGHT)  # what the caller read is being replaced
                raise Conflict("Another change of this appointment is in progress; retry shortly.")
            new_slot = slot_id(provider_id, slot[0])
            lease = Pending(id=uuid.uuid4().hex, slot=new_slot, at=stamp(now))
            try:
                leased = await self._appointments.replace(item.changed(pending=lease))
            except PreconditionFailed:
                if if_match is not None:
                    raise IfMatchFailed(IN_FLIGHT) from None
                raise Again() from None
            try:
                await self._check_overlap(provider_id, slot, appointment_id)
                held = await self._claim(provider_id, slot, appointment_id)
            except Conflict:
                # The new slot is not free: drop the lease, the booking stays as it was.
                with contextlib.suppress(PreconditionFailed, NotFound):
                    await self._appointments.replace(leased.changed(pending=None))
                raise
            # The new place is listed before the move and the old one unlisted after it; readers
            # keep only the entry whose start matches the appointment's (lists.py).
            await lists.add(
                self._store,
                *index.appointment_entries(appointment_id, str(item.patient_id), provider_id, stamp(slot[0])),
            )
            updated = _now_z(self._clock)
            moved = with_event(
                leased.changed(
                    pending=None,
                    start=stamp(slot[0]),
                    end=stamp(slot[1]),
                    moves=item.moves + 1,
                    updated=updated,
                    previous_start=item.start,
                ),
                "rescheduled",
                updated,
            )
            try:
                result = await self._appointments.replace(moved)
            except PreconditionFailed:
                current = await self._appointments.read_or_none(appointment_id)
                if current is not None and current.status != "booked":
                    # Cancelled or checked in meanwhile: it will never move here, free the hold.
                    await self._release(provider_id, stamp(slot[0]), appointment_id)
                # Otherwise the lease was revoked or taken over; the hold is the new owner's to
                # keep or the reclaim rules' to free. Freeing it here could free a live booking.
                raise Conflict(
                    "The appointment changed while it was being rescheduled; read it and retry."
                ) from None
            await self._confirm(held)
            await self._release(provider_id, item.start, appointment_id)
            await index.remove_appointment(
                self._store, str(item.patient_id), provider_id, item.start, appointment_id
            )
            await self._audit(
                actor, "update", f"appointments/{appointment_id}", item.patient_id, correlation_id
            )
            log.info("appointment rescheduled", extra={"appointment_id": appointment_id})
            return result

        return await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The appointment is being changed concurrently; retry."),
        )

    async def cancel(
        self, actor: Principal, appointment_id: str, correlation_id: str, *, if_match: IfMatch | None = None
    ) -> AppointmentDocument:
        return await self._transition(actor, appointment_id, "cancelled", correlation_id, if_match)

    async def set_status(
        self,
        actor: Principal,
        appointment_id: str,
        status: str,
        correlation_id: str,
        *,
        if_match: IfMatch | None = None,
    ) -> AppointmentDocument:
        return await self._transition(actor, appointment_id, status, correlation_id, if_match)

    async def _transition(
        self,
        actor: Principal,
        appointment_id: str,
        status: str,
        correlation_id: str,
        if_match: IfMatch | None,
    ) -> AppointmentDocument:
        """With `if_match` only if the appointment has not changed since the caller read it (412
        otherwise), unless it already has this status (a retry: 200, as for a reschedule)."""

        async def step() -> AppointmentDocument:
            item = await self._owned(actor, appointment_id)
            resource = f"appointments/{appointment_id}"
            if item.status != status:
                check_if_match(if_match, appointment_etag(item), "appointment")
            if item.status == status:
                # A retry: its event was written with the change; change nothing.
                await self._audit(actor, "read", resource, item.patient_id, correlation_id)
                return item
            if status not in TRANSITIONS.get(item.status, ()):
                raise Conflict(f"A {item.status} appointment cannot become {status}.")
            now = self._clock.now()
            if status == "noshow" and now < parse_stamp(item.start):
                raise Conflict("An appointment cannot be a no-show before it starts.")
            changed = with_event(
                item.changed(pending=None, status=status, updated=stamp(now)), status, stamp(now)
            )
            try:
                result = await self._appointments.replace(changed)
            except PreconditionFailed:
                raise Again() from None
            if status == "cancelled":
                await self._release(item.provider_id, item.start, appointment_id)
            await self._audit(actor, "update", resource, item.patient_id, correlation_id)
            log.info("appointment status changed", extra={"appointment_id": appointment_id, "status": status})
            return result

        return await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The appointment is being changed concurrently; retry."),
        )
