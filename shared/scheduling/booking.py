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

Events go to the `appointment-events` queue with ids derived from what happened
(`appointment-booked:<id>`, `appointment-rescheduled:<id>:<version>`, `appointment-cancelled:<id>`,
`appointment-noshow:<id>`). The store write comes first; if the send then fails the request answers
503 and every retry path re-sends the same message id (duplicate detection drops the copy): a
booking retried with its `Idempotency-Key`, a reschedule to the start it already has, a cancel of
a cancelled appointment, a no-show of a no-show.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.audit.trail import Action, record_access
from shared.auth.principal import Principal
from shared.kernel import lists
from shared.kernel.catalog import QUEUES
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Item, Query, where
from shared.kernel.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unavailable,
    UnprocessableContent,
    ValidationFailed,
)
from shared.kernel.etags import IfMatch, IfMatchFailed, check_if_match, content_etag, stored_etag
from shared.kernel.ids import is_id
from shared.kernel.messages import MessageBus
from shared.kernel.messaging import json_message
from shared.kernel.observability import mark_phi
from shared.kernel.retry import Again, retry
from shared.kernel.times import parse_stamp, stamp
from shared.scheduling.model import (
    TRANSITIONS,
    Appointment,
    BookingRequest,
    Calendar,
    FreeSlots,
    Provider,
    ProviderView,
    Slot,
    SlotQuery,
    search_window,
    slot_id,
)
from shared.scheduling.model import (
    check_provider_id as provider_id_problem,
)
from shared.scheduling.slot_search import after_of, free_of, free_page, page_token

log = logging.getLogger("psc.scheduling")

PROVIDERS = "providers"
SLOTS = "slots"
APPOINTMENTS = "appointments"
LOOKUPS = "lookups"
EVENTS_QUEUE = QUEUES["appointment-events"].name

# How long a hold (or a reschedule lease) protects an operation in flight. Far longer than a
# booking takes; short enough that a slot whose writer died comes back within minutes.
HOLD = timedelta(seconds=60)
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_RETRIES = 8
TAKEN = "The slot is not free."
IN_FLIGHT = "The appointment is being changed by another request (If-Match): read it again."


def _now_z(clock: Clock) -> str:
    return stamp(clock.now())


def _public(item: Item) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def appointment_view(item: Item) -> Appointment:
    return Appointment.model_validate({k: item.get(k) for k in Appointment.model_fields if k in item})


def appointment_etag(item: Item) -> str:
    """The entity-tag of an appointment: a hash of it as served (and its version), so the
    reschedule lease and the reclaim rewrites, which leave it as it was, do not change it and a
    client's If-Match from a read stays good until the appointment really changes."""
    return content_etag(appointment_view(item).model_dump(mode="json"), item.get("version", 0))


def provider_view(item: Item) -> ProviderView:
    return ProviderView.model_validate({k: item[k] for k in ProviderView.model_fields if k in item})


def check_provider_id(provider_id: str) -> str:
    try:
        return provider_id_problem(provider_id)
    except ValueError as error:
        raise ValidationFailed([{"field": "providerId", "message": str(error)}]) from None


def check_appointment_id(appointment_id: str) -> str:
    if not is_id(appointment_id):
        raise ValidationFailed([{"field": "id", "message": "is not a valid appointment id"}])
    return appointment_id


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Booked:
    item: Item
    replayed: bool = False


@dataclass(frozen=True)
class TakenSlot:
    id: str
    start: datetime
    end: datetime
    status: str


class Scheduling:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._providers = store.container(PROVIDERS)
        self._slots = store.container(SLOTS)
        self._appointments = store.container(APPOINTMENTS)
        self._lookups = store.container(LOOKUPS)

    # ---- providers ------------------------------------------------------------------------------

    async def put_provider(
        self,
        actor: Principal,
        provider_id: str,
        provider: Provider,
        correlation_id: str,
        *,
        if_match: IfMatch | None = None,
    ) -> tuple[Item, bool]:
        """Create or replace a provider's calendar; returns (document, created). Existing
        appointments keep their times even if the new hours no longer contain them. With
        `if_match` only over the version the caller read (412 otherwise)."""
        check_provider_id(provider_id)
        body = provider.model_dump(mode="json")
        specialty_key = provider.specialty.casefold()
        # Listed before it is written (shared/kernel/lists.py: a dangling entry is skipped).
        await lists.add(self._store, *lists.provider_entries(provider_id, specialty_key))

        async def step() -> tuple[Item, bool]:
            now = _now_z(self._clock)
            current = await self._read_or_none(self._providers, provider_id, provider_id)
            check_if_match(if_match, None if current is None else stored_etag(current), "provider")
            item = {
                **body,
                "id": provider_id,
                "type": "provider",
                "specialtyKey": specialty_key,
                "createdAt": current["createdAt"] if current else now,
                "updatedAt": now,
            }
            try:
                if current is None:
                    stored = await self._providers.create(item)
                else:
                    stored = await self._providers.replace(item, etag=current["_etag"])
            except (Conflict, PreconditionFailed, NotFound):
                raise Again() from None  # a concurrent write: apply on top of it
            if current is not None and current.get("specialtyKey") != specialty_key:
                old_list = lists.specialty_list(str(current.get("specialtyKey")))
                await lists.remove(self._store, old_list, provider_id)
            await self._audit(
                actor,
                "create" if current is None else "update",
                f"providers/{provider_id}",
                None,
                correlation_id,
            )
            return stored, current is None

        return await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The provider is being changed concurrently; retry."),
        )

    async def provider(self, provider_id: str) -> Item:
        check_provider_id(provider_id)
        try:
            return await self._providers.read(provider_id, provider_id)
        except NotFound:
            raise NotFound("No such provider.") from None

    # ---- slots ----------------------------------------------------------------------------------

    async def taken(self, provider_id: str, start: datetime, end: datetime) -> list[TakenSlot]:
        """Slot documents overlapping [start, end): one query inside the provider's partition."""
        query = Query(
            (where("start", "<", stamp(end)), where("end", ">", stamp(start))),
            order_by=(("start", False),),
        )
        found: list[TakenSlot] = []
        continuation = None
        while True:
            page = await self._slots.query(
                query, partition_key=provider_id, max_items=1000, continuation=continuation
            )
            found += [
                TakenSlot(i["id"], parse_stamp(i["start"]), parse_stamp(i["end"]), i.get("status", "busy"))
                for i in page.items
            ]
            continuation = page.continuation
            if not continuation:
                return found

    async def free_slots(self, provider_id: str, query: SlotQuery) -> FreeSlots:
        """One page of bookable slots (shared/scheduling/slot_search.py)."""
        provider = await self.provider(provider_id)
        calendar = Calendar.of(provider)
        window = _window(query, calendar)
        after = after_of(query.continuationToken, provider_id, window) if query.continuationToken else None

        async def taken_between(start: datetime, end: datetime) -> list[TakenSlot]:
            return await self.taken(provider_id, start, end)

        free, more = await free_page(
            taken_between, calendar, window, now=self._clock.now(), after=after, limit=query.maxItems
        )
        return FreeSlots(
            providerId=provider_id,
            timeZone=provider["timeZone"],
            slots=[Slot(start=stamp(s), end=stamp(e)) for s, e in free],
            continuationToken=page_token(provider_id, window, free[-1][0]) if more else None,
        )

    async def slot_states(
        self, provider_id: str, query: SlotQuery
    ) -> tuple[list[tuple[datetime, datetime]], list[TakenSlot]]:
        """Free (bookable) slots and taken slot documents in the window, for the FHIR view."""
        provider = await self.provider(provider_id)
        return await self._search(provider_id, Calendar.of(provider), query)

    async def _search(
        self, provider_id: str, calendar: Calendar, query: SlotQuery
    ) -> tuple[list[tuple[datetime, datetime]], list[TakenSlot]]:
        start, end = _window(query, calendar)
        earliest, last_day = calendar.bookable_window(self._clock.now())
        taken = await self.taken(provider_id, start, end + calendar.slot)
        return free_of(calendar.slots_between(max(start, earliest), end), taken, calendar, last_day), [
            t for t in taken if t.start < end and t.end > start
        ]

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
        lookup: Item | None = None
        fingerprint = _sha256(
            request.providerId, stamp(start), patient_id, request.reason, conversation_id or ""
        )
        if idempotency_key is not None:
            if not _IDEMPOTENCY_KEY.match(idempotency_key):
                raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters.")
            lookup_id = "appt-idem:" + _sha256(actor.subject, idempotency_key)
            lookup = await self._read_or_none(self._lookups, lookup_id, lookup_id)
            if lookup is not None:
                replay = await self._replay(actor, lookup, fingerprint, correlation_id)
                if replay is not None:
                    return replay
        calendar = Calendar.of(provider)
        slot = calendar.slot_at(start)
        if slot is None:
            raise Conflict("The provider has no slot starting at this time.")
        violation = calendar.rule_violation(slot[0], self._clock.now())
        if violation:
            raise Conflict(violation)

        created_lookup = False
        if idempotency_key is not None and lookup is None:
            lookup_id = "appt-idem:" + _sha256(actor.subject, idempotency_key)
            try:
                lookup = await self._lookups.create(
                    {
                        "id": lookup_id,
                        "type": "appointment-idempotency",
                        "appointmentId": uuid.uuid4().hex,
                        "fingerprint": fingerprint,
                        "createdAt": _now_z(self._clock),
                        "ttl": IDEMPOTENCY_TTL_SECONDS,
                    }
                )
                created_lookup = True
            except Conflict:  # the same key, concurrently: continue the other request's booking
                lookup = await self._lookups.read(lookup_id, lookup_id)
                if lookup["fingerprint"] != fingerprint:
                    raise Conflict("This Idempotency-Key was used for a different request.") from None
        appointment_id = lookup["appointmentId"] if lookup else uuid.uuid4().hex

        try:
            await self._check_overlap(request.providerId, slot, appointment_id)
            held = await self._claim(request.providerId, slot, appointment_id)
        except Conflict:
            if created_lookup and lookup is not None:
                with contextlib.suppress(NotFound, PreconditionFailed):
                    # The key bought nothing: a retry may try again from scratch.
                    await self._lookups.delete(lookup["id"], lookup["id"], etag=lookup["_etag"])
            raise
        # Listed before it exists, after the hold: a booking that dies here leaves entries that
        # readers skip (no appointment, or a tombstone), never an appointment missing from lists.
        await lists.add(
            self._store,
            *lists.appointment_entries(appointment_id, patient_id, request.providerId, stamp(slot[0])),
        )
        now = _now_z(self._clock)
        document = {
            "id": appointment_id,
            "type": "appointment",
            "status": "booked",
            "providerId": request.providerId,
            "patientId": patient_id,
            "start": stamp(slot[0]),
            "end": stamp(slot[1]),
            "reason": request.reason,
            "conversationId": conversation_id,
            "bookedBy": actor.subject,
            "version": 0,
            "created": now,
            "updated": now,
        }
        try:
            item = await self._appointments.create(document)
        except Conflict:
            # Either a concurrent request with the same Idempotency-Key wrote it first, or the hold
            # went stale and a reclaimer tombstoned this id: then the slot is no longer ours.
            item = await self._appointments.read(appointment_id, appointment_id)
            if item.get("tombstone"):
                await lists.remove_appointment(
                    self._store, patient_id, request.providerId, stamp(slot[0]), appointment_id
                )
                raise Conflict(
                    "The hold on the slot expired before the booking completed; book again."
                ) from None
        await self._confirm(held)
        await self._audit(actor, "create", f"appointments/{appointment_id}", patient_id, correlation_id)
        await self._publish("booked", item)
        log.info("appointment booked", extra={"appointment_id": appointment_id})
        return Booked(item)

    async def _references(
        self, actor: Principal, request: BookingRequest, patient_id: str, conversation_id: str | None
    ) -> Item:
        """Everything a booking names must exist before anything is written: the patient (a
        patient's own record missing is 404; a staff request naming a missing one is 422, as are
        an unknown provider and a conversation that is not this patient's). Returns the provider."""
        from shared.conversations.lifecycle import conversation_patient
        from shared.patients.registry import patient_exists

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
        self, actor: Principal, lookup: Item, fingerprint: str, correlation_id: str
    ) -> Booked | None:
        if lookup["fingerprint"] != fingerprint:
            raise Conflict("This Idempotency-Key was used for a different request.")
        appointment_id = lookup["appointmentId"]
        item = await self._read_or_none(self._appointments, appointment_id, appointment_id)
        if item is None or item.get("tombstone"):
            return None  # the first attempt never finished: carry on with its appointment id
        await self._audit(actor, "read", f"appointments/{appointment_id}", item["patientId"], correlation_id)
        await self._publish("booked", item)  # the same message id: a no-op unless the first send failed
        return Booked(item, replayed=True)

    async def _check_overlap(
        self, provider_id: str, slot: tuple[datetime, datetime], appointment_id: str
    ) -> None:
        """Refuse a slot overlapping a booking made on another grid (the provider changed
        `slotMinutes` or hours since). The slot document's id is what guarantees exclusivity on
        one grid; this is the booking path's only query, inside one partition."""
        wanted = slot_id(provider_id, slot[0])
        for other in await self.taken(provider_id, slot[0], slot[1]):
            if other.id == wanted:
                continue  # `_claim` decides about the slot itself
            current = await self._read_or_none(self._slots, other.id, provider_id)
            if current is None or current.get("appointmentId") == appointment_id:
                continue
            if not await self._reclaim(current):
                raise Conflict(TAKEN)

    async def _claim(self, provider_id: str, slot: tuple[datetime, datetime], appointment_id: str) -> Item:
        """Create the slot's hold for `appointment_id`; 409 if another appointment holds it."""
        hold = {
            "id": slot_id(provider_id, slot[0]),
            "type": "slot",
            "providerId": provider_id,
            "start": stamp(slot[0]),
            "end": stamp(slot[1]),
            "appointmentId": appointment_id,
            "status": "busy-tentative",
            "heldAt": _now_z(self._clock),
        }

        async def step() -> Item:
            try:
                return await self._slots.create(hold)
            except Conflict:
                pass
            current = await self._read_or_none(self._slots, hold["id"], provider_id)
            if current is None:
                raise Again()  # released in between: try again
            if current.get("appointmentId") == appointment_id:
                return current  # ours: a retry of the same operation resumes
            if not await self._reclaim(current):
                raise Conflict(TAKEN)
            raise Again()  # reclaimed: take it now

        return await retry(step, attempts=3, give_up=lambda: Conflict(TAKEN))

    async def _reclaim(self, slot: Item) -> bool:
        """Delete a slot document that no live appointment will ever stand on; True if it is gone."""
        now = self._clock.now()
        if slot.get("status") == "busy-tentative" and parse_stamp(slot["heldAt"]) + HOLD > now:
            return False  # a booking in flight
        holder_id = slot["appointmentId"]

        async def step() -> bool:
            """True when no live appointment will ever stand on the slot."""
            holder = await self._read_or_none(self._appointments, holder_id, holder_id)
            if holder is None:
                # Its booking died between hold and appointment: make the late create impossible.
                try:
                    await self._appointments.create(
                        {
                            "id": holder_id,
                            "type": "appointment",
                            "status": "entered-in-error",
                            "tombstone": True,
                            "providerId": slot["providerId"],
                            "start": slot["start"],
                            "created": stamp(now),
                        }
                    )
                except Conflict:
                    raise Again() from None  # it was written after all: look at it
                return True
            if not _is_active(holder):
                return True  # cancelled or entered-in-error: it stands on no slot
            if holder["start"] == slot["start"] and holder["providerId"] == slot["providerId"]:
                if slot.get("status") == "busy-tentative":
                    await self._confirm(slot)  # the writer died after booking: finish its work
                return False
            pending = holder.get("pending")
            if pending and pending.get("slot") == slot["id"] and parse_stamp(pending["at"]) + HOLD > now:
                return False  # a reschedule onto this slot in flight
            # An appointment that stands elsewhere: its move here died, or its old slot was not
            # released. Rewriting it changes its ETag, so a slow move can no longer land here.
            revoked = {k: v for k, v in _public(holder).items() if k != "pending"}
            try:
                await self._appointments.replace(revoked, etag=holder["_etag"])
            except (PreconditionFailed, NotFound):
                raise Again() from None
            return True

        try:
            free = await retry(step, attempts=_RETRIES)
        except Again:
            return False  # still contended: the caller treats the slot as taken
        if not free:
            return False
        # NotFound / 412: released or reclaimed by someone else meanwhile; the caller looks again.
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._slots.delete(slot["id"], slot["providerId"], etag=slot["_etag"])
        log.info("stale slot hold reclaimed", extra={"appointment_id": holder_id})
        return True

    async def _confirm(self, held: Item) -> None:
        """busy-tentative → busy. Best effort: a hold whose appointment stands on it counts as
        taken either way; the status only lets searches skip the appointment read."""
        if held.get("status") == "busy":
            return
        with contextlib.suppress(PreconditionFailed, NotFound):
            await self._slots.replace({**_public(held), "status": "busy"}, etag=held["_etag"])

    async def _release(self, provider_id: str, start: str, appointment_id: str) -> None:
        """Delete the slot document at `start` if it still names this appointment."""
        sid = slot_id(provider_id, parse_stamp(start))
        current = await self._read_or_none(self._slots, sid, provider_id)
        if current is None or current.get("appointmentId") != appointment_id:
            return
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._slots.delete(sid, provider_id, etag=current["_etag"])

    # ---- one appointment ------------------------------------------------------------------------

    async def _owned(self, actor: Principal, appointment_id: str) -> Item:
        check_appointment_id(appointment_id)
        item = await self._read_or_none(self._appointments, appointment_id, appointment_id)
        if item is None or item.get("tombstone"):
            raise NotFound("No such appointment.")
        if actor.acts_as_patient_only and item.get("patientId") != actor.patient_id:
            raise NotFound("No such appointment.")  # indistinguishable from absence
        mark_phi(item.get("reason"))
        return item

    async def read(self, actor: Principal, appointment_id: str, correlation_id: str) -> Item:
        item = await self._owned(actor, appointment_id)
        await self._audit(actor, "read", f"appointments/{appointment_id}", item["patientId"], correlation_id)
        return item

    async def reschedule(
        self,
        actor: Principal,
        appointment_id: str,
        start: datetime,
        correlation_id: str,
        *,
        if_match: IfMatch | None = None,
    ) -> Item:
        """Move a booked appointment. With `if_match` only if it has not changed since the caller
        read it and no other change of it is in flight (412 otherwise; without `if_match` a change
        in flight is a 409), unless it already starts there: a retry whose first answer was lost
        succeeds (RFC 9110 §13.1.1 allows a 2xx for a change already made)."""
        wanted = stamp(start)

        async def step() -> Item:
            item = await self._owned(actor, appointment_id)
            if item["start"] != wanted or item["status"] != "booked":
                check_if_match(if_match, appointment_etag(item), "appointment")
            if item["status"] != "booked":
                raise Conflict(f"A {item['status']} appointment cannot be rescheduled.")
            if item["start"] == wanted:
                # Already there (a retry): re-send the last move's event, finish unlisting the
                # old place, change nothing else.
                if item.get("version", 0) > 0:
                    if item.get("previousStart"):
                        await lists.remove_appointment(
                            self._store,
                            item["patientId"],
                            item["providerId"],
                            item["previousStart"],
                            item["id"],
                        )
                    await self._publish("rescheduled", item)
                await self._audit(
                    actor, "read", f"appointments/{appointment_id}", item["patientId"], correlation_id
                )
                return item
            provider_id = item["providerId"]
            calendar = Calendar.of(await self.provider(provider_id))
            slot = calendar.slot_at(start)
            if slot is None:
                raise Conflict("The provider has no slot starting at this time.")
            now = self._clock.now()
            violation = calendar.rule_violation(slot[0], now)
            if violation:
                raise Conflict(violation)
            pending = item.get("pending")
            if pending and parse_stamp(pending["at"]) + HOLD > now:
                if if_match is not None:
                    raise IfMatchFailed(IN_FLIGHT)  # what the caller read is being replaced
                raise Conflict("Another change of this appointment is in progress; retry shortly.")
            new_slot = slot_id(provider_id, slot[0])
            lease = {"id": uuid.uuid4().hex, "slot": new_slot, "at": stamp(now)}
            try:
                leased = await self._appointments.replace(
                    {**_public(item), "pending": lease}, etag=item["_etag"]
                )
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
                    await self._appointments.replace(
                        {k: v for k, v in _public(leased).items() if k != "pending"}, etag=leased["_etag"]
                    )
                raise
            # The new place is listed before the move and the old one unlisted after it; readers
            # keep only the entry whose start matches the appointment's (lists.py).
            await lists.add(
                self._store,
                *lists.appointment_entries(appointment_id, item["patientId"], provider_id, stamp(slot[0])),
            )
            moved = {k: v for k, v in _public(leased).items() if k != "pending"}
            moved.update(
                start=stamp(slot[0]),
                end=stamp(slot[1]),
                version=int(item.get("version", 0)) + 1,
                updated=_now_z(self._clock),
                previousStart=item["start"],
            )
            try:
                result = await self._appointments.replace(moved, etag=leased["_etag"])
            except PreconditionFailed:
                current = await self._read_or_none(self._appointments, appointment_id, appointment_id)
                if current is not None and current["status"] != "booked":
                    # Cancelled or checked in meanwhile: it will never move here, free the hold.
                    await self._release(provider_id, stamp(slot[0]), appointment_id)
                # Otherwise the lease was revoked or taken over; the hold is the new owner's to
                # keep or the reclaim rules' to free. Freeing it here could free a live booking.
                raise Conflict(
                    "The appointment changed while it was being rescheduled; read it and retry."
                ) from None
            await self._confirm(held)
            await self._release(provider_id, item["start"], appointment_id)
            await lists.remove_appointment(
                self._store, item["patientId"], provider_id, item["start"], appointment_id
            )
            await self._audit(
                actor, "update", f"appointments/{appointment_id}", item["patientId"], correlation_id
            )
            await self._publish("rescheduled", result)
            log.info("appointment rescheduled", extra={"appointment_id": appointment_id})
            return result

        return await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The appointment is being changed concurrently; retry."),
        )

    async def cancel(
        self, actor: Principal, appointment_id: str, correlation_id: str, *, if_match: IfMatch | None = None
    ) -> Item:
        return await self._transition(actor, appointment_id, "cancelled", correlation_id, if_match)

    async def set_status(
        self,
        actor: Principal,
        appointment_id: str,
        status: str,
        correlation_id: str,
        *,
        if_match: IfMatch | None = None,
    ) -> Item:
        return await self._transition(actor, appointment_id, status, correlation_id, if_match)

    async def _transition(
        self,
        actor: Principal,
        appointment_id: str,
        status: str,
        correlation_id: str,
        if_match: IfMatch | None,
    ) -> Item:
        """With `if_match` only if the appointment has not changed since the caller read it (412
        otherwise), unless it already has this status (a retry: 200, as for a reschedule)."""

        async def step() -> Item:
            item = await self._owned(actor, appointment_id)
            resource = f"appointments/{appointment_id}"
            if item["status"] != status:
                check_if_match(if_match, appointment_etag(item), "appointment")
            if item["status"] == status:
                # A retry: re-send the event (same id), change nothing.
                await self._publish(status, item)
                await self._audit(actor, "read", resource, item["patientId"], correlation_id)
                return item
            if status not in TRANSITIONS.get(item["status"], ()):
                raise Conflict(f"A {item['status']} appointment cannot become {status}.")
            now = self._clock.now()
            if status == "noshow" and now < parse_stamp(item["start"]):
                raise Conflict("An appointment cannot be a no-show before it starts.")
            changed = {k: v for k, v in _public(item).items() if k != "pending"}
            changed.update(status=status, updated=stamp(now))
            try:
                result = await self._appointments.replace(changed, etag=item["_etag"])
            except PreconditionFailed:
                raise Again() from None
            if status == "cancelled":
                await self._release(item["providerId"], item["start"], appointment_id)
            await self._audit(actor, "update", resource, item["patientId"], correlation_id)
            await self._publish(status, result)
            log.info("appointment status changed", extra={"appointment_id": appointment_id, "status": status})
            return result

        return await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The appointment is being changed concurrently; retry."),
        )

    # ---- plumbing -------------------------------------------------------------------------------

    async def _publish(self, kind: str, item: Item) -> None:
        message_id = {
            "booked": f"appointment-booked:{item['id']}",
            "rescheduled": f"appointment-rescheduled:{item['id']}:{item.get('version', 0)}",
            "cancelled": f"appointment-cancelled:{item['id']}",
            "noshow": f"appointment-noshow:{item['id']}",
        }.get(kind)
        if message_id is None:
            return  # arrived / fulfilled: nothing consumes them yet
        body = {
            "type": f"appointment.{kind}",
            "appointmentId": item["id"],
            "providerId": item["providerId"],
            "patientId": item["patientId"],
            "status": item["status"],
            "start": item["start"],
            "end": item["end"],
            "previousStart": item.get("previousStart") if kind == "rescheduled" else None,
            "version": item.get("version", 0),
            "occurredAt": item.get("updated"),
        }
        message = json_message(
            {k: v for k, v in body.items() if v is not None},
            message_id=message_id,
            subject=f"appointment.{kind}",
            type=f"appointment.{kind}",
        )
        try:
            await self._bus.send(EVENTS_QUEUE, message)
        except Exception as exc:
            log.warning(
                "appointment event not sent",
                extra={
                    "appointment_id": item["id"],
                    "message_id": message_id,
                    "error_type": type(exc).__name__,
                },
            )
            raise Unavailable(
                "The change is saved, but its notification could not be queued; "
                "retry the same request to send it."
            ) from None

    async def _audit(
        self, actor: Principal, action: Action, resource: str, patient_id: str | None, correlation_id: str
    ) -> None:
        await record_access(
            self._store,
            self._clock,
            actor=actor,
            action=action,
            resource=resource,
            patient_id=patient_id,
            correlation_id=correlation_id,
        )

    @staticmethod
    async def _read_or_none(container: Any, id: str, partition_key: str) -> Item | None:
        try:
            item: Item = await container.read(id, partition_key)
        except NotFound:
            return None
        return item


def _is_active(item: Item) -> bool:
    return item.get("status") in {"booked", "arrived", "fulfilled", "noshow"}


def _patient_for(actor: Principal, requested: str | None) -> str:
    if actor.acts_as_patient_only:
        own = actor.patient_id
        if not own:
            raise Forbidden("The token carries no patient_id claim.")
        if requested is not None and requested != own:
            raise NotFound("No such patient.")  # another patient's id: as if it did not exist
        return own
    if requested is None:
        raise ValidationFailed([{"field": "body.patientId", "message": "is required when staff book"}])
    return requested


def _window(query: SlotQuery, calendar: Calendar) -> tuple[datetime, datetime]:
    try:
        return search_window(query, calendar.zone)
    except ValueError as exc:
        raise ValidationFailed([{"field": "query", "message": str(exc)}]) from None


# ---- demo data ----------------------------------------------------------------------------------

_WEEKDAYS_9_TO_5 = {d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}

DEMO_PROVIDERS: dict[str, dict[str, Any]] = {
    "dr-nowak": {
        "name": "Dr. Ewa Nowak (demo)",
        "specialty": "cardiology",
        "timeZone": "Europe/Warsaw",
        "slotMinutes": 30,
        "weeklyHours": {
            **{d: [["08:00", "12:00"], ["13:00", "16:00"]] for d in ("mon", "tue", "wed", "thu")},
            "fri": [["08:00", "13:00"]],
        },
        "exceptions": [
            {"date": "2026-12-24", "hours": []},
            {"date": "2026-12-31", "hours": [["08:00", "11:00"]]},
        ],
        "bookingRules": {"maxDaysAhead": 90, "minNoticeMinutes": 120},
    },
    "dr-carter": {
        "name": "Dr. Sam Carter (demo)",
        "specialty": "family-medicine",
        "timeZone": "America/New_York",
        "slotMinutes": 20,
        "weeklyHours": {**_WEEKDAYS_9_TO_5, "sat": [["09:00", "12:00"]]},
        "exceptions": [{"date": "2026-11-26", "hours": []}],
        "bookingRules": {"maxDaysAhead": 60, "minNoticeMinutes": 60},
    },
    "dr-sato": {
        "name": "Dr. Yui Sato (demo)",
        "specialty": "dermatology",
        "timeZone": "Asia/Tokyo",
        "slotMinutes": 15,
        "weeklyHours": _WEEKDAYS_9_TO_5,
        "exceptions": [],
        "bookingRules": {"maxDaysAhead": 30, "minNoticeMinutes": 240},
    },
    "dr-okafor": {
        "name": "Dr. Ada Okafor (demo)",
        "specialty": "family-medicine",
        "timeZone": "Europe/London",
        "slotMinutes": 30,
        "weeklyHours": {d: [["08:30", "12:30"], ["14:00", "18:00"]] for d in ("mon", "wed", "fri")},
        "exceptions": [],
        "bookingRules": {"maxDaysAhead": 120, "minNoticeMinutes": 0},
    },
}


async def seed_scheduling_demo(runtime: Any, base_url: str = "http://127.0.0.1:7071/api") -> list[str]:
    """Create the demo providers if absent (idempotent); lines for the dev host banner."""
    providers = runtime.store.container(PROVIDERS)
    now = stamp(runtime.clock.now())
    for provider_id, data in DEMO_PROVIDERS.items():
        body = Provider.model_validate(data).model_dump(mode="json")
        # Listed every time: a store seeded before provider lists existed gets its entries too.
        await lists.add(runtime.store, *lists.provider_entries(provider_id, body["specialty"].casefold()))
        with contextlib.suppress(Conflict):  # already seeded (or edited since): leave it
            await providers.create(
                {
                    **body,
                    "id": provider_id,
                    "type": "provider",
                    "specialtyKey": body["specialty"].casefold(),
                    "createdAt": now,
                    "updatedAt": now,
                }
            )
    today = runtime.clock.now().astimezone(UTC).date()
    until = today + timedelta(days=7)
    return [
        "Scheduling demo: "
        + ", ".join(f"{pid} ({d['specialty']}, {d['timeZone']})" for pid, d in DEMO_PROVIDERS.items()),
        f'  curl -H "Authorization: Bearer $PATIENT_TOKEN" "{base_url}/providers?specialty=family-medicine"',
        f'  curl -H "Authorization: Bearer $PATIENT_TOKEN" '
        f'"{base_url}/providers/dr-nowak/slots?from={today}&to={until}"',
        f"  book one: POST {base_url}/appointments with providerId, start (a slot's start) and reason",
    ]
