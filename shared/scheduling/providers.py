"""Provider calendars and their slots: the provider registry (administrators keep calendars; every
change is listed on the providers' lists first), the taken slots of a provider (one in-partition
range query) and the free-slot search (shared/scheduling/slot_search.py)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.audit.api import Action, record_access
from shared.auth.principal import Principal
from shared.kernel import lists
from shared.kernel.catalog import APPOINTMENTS, PROVIDERS, SLOTS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from shared.kernel.etags import IfMatch, check_if_match, content_etag, stored_etag
from shared.kernel.idempotency import Idempotency, IdempotencyRecord, Scope, answer_of
from shared.kernel.ids import is_id
from shared.kernel.messages import MessageBus
from shared.kernel.outbox import Aggregates
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Stored
from shared.kernel.times import parse_stamp, stamp
from shared.scheduling import index
from shared.scheduling.documents import AppointmentDocument, ProviderDocument, SlotDocument
from shared.scheduling.model import (
    Appointment,
    Calendar,
    FreeSlots,
    Provider,
    ProviderView,
    Slot,
    SlotQuery,
    search_window,
)
from shared.scheduling.model import (
    check_provider_id as provider_id_problem,
)
from shared.scheduling.slot_search import after_of, free_of, free_page, page_token

log = logging.getLogger("psc.scheduling")


# How long a hold (or a reschedule lease) protects an operation in flight. Far longer than a
# booking takes; short enough that a slot whose writer died comes back within minutes.
HOLD = timedelta(seconds=60)
# An Idempotency-Key is kept a day; read before any rule check, so a retry after the notice
# window still gets its appointment.
BOOKINGS = Scope("appt-idem", "appointment-idempotency", timedelta(hours=24))
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_RETRIES = 8
TAKEN = "The slot is not free."
IN_FLIGHT = "The appointment is being changed by another request (If-Match): read it again."


def _now_z(clock: Clock) -> str:
    return stamp(clock.now())


def with_event(item: AppointmentDocument, status: str, at: str) -> AppointmentDocument:
    """The appointment with its `appointment.<status>` event (booked, rescheduled, cancelled,
    arrived, fulfilled, noshow): ids and times only, never the reason."""
    data = {
        "patientId": item.patient_id,
        "providerId": item.provider_id,
        "status": item.status,
        "start": item.start,
        "end": item.end,
        "conversationId": item.conversation_id,
    }
    if status == "rescheduled":
        data["previousStart"] = item.previous_start
    return item.emit(f"appointment.{status}", at, **{k: v for k, v in data.items() if v is not None})


def appointment_view(item: AppointmentDocument) -> Appointment:
    body = item.body()
    return Appointment.model_validate({k: body[k] for k in Appointment.model_fields if k in body})


def appointment_etag(item: AppointmentDocument) -> str:
    """The entity-tag of an appointment: a hash of it as served (and how often it moved), so the
    reschedule lease and the reclaim rewrites, which leave it as it was, do not change it and a
    client's If-Match from a read stays good until the appointment really changes."""
    return content_etag(appointment_view(item).model_dump(mode="json"), item.moves)


def provider_view(item: ProviderDocument) -> ProviderView:
    body = item.body()
    return ProviderView.model_validate({k: body[k] for k in ProviderView.model_fields if k in body})


def check_provider_id(provider_id: str) -> str:
    try:
        return provider_id_problem(provider_id)
    except ValueError as error:
        raise ValidationFailed([{"field": "providerId", "message": str(error)}]) from None


def check_appointment_id(appointment_id: str) -> str:
    if not is_id(appointment_id):
        raise ValidationFailed([{"field": "id", "message": "is not a valid appointment id"}])
    return appointment_id


def _booked_id(lookup: IdempotencyRecord | None) -> str | None:
    """The appointment id an Idempotency-Key record holds."""
    answer = answer_of(lookup)
    return str(answer["appointmentId"]) if answer and answer.get("appointmentId") else None


@dataclass(frozen=True)
class TakenSlot:
    id: str
    start: datetime
    end: datetime
    status: str


class ProviderCalendars:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._providers = Stored(store, PROVIDERS, ProviderDocument)
        self._slots = Stored(store, SLOTS, SlotDocument)
        self._appointments = Aggregates(store, APPOINTMENTS, AppointmentDocument)
        self._bookings = Idempotency(store, clock, BOOKINGS)

    # ---- providers ------------------------------------------------------------------------------

    async def put_provider(
        self,
        actor: Principal,
        provider_id: str,
        provider: Provider,
        correlation_id: str,
        *,
        if_match: IfMatch | None = None,
    ) -> tuple[ProviderDocument, bool]:
        """Create or replace a provider's calendar; returns (document, created). Existing
        appointments keep their times even if the new hours no longer contain them. With
        `if_match` only over the version the caller read (412 otherwise)."""
        check_provider_id(provider_id)
        body = provider.model_dump(mode="json")
        specialty_key = provider.specialty.casefold()
        # Listed before it is written (shared/kernel/lists.py: a dangling entry is skipped).
        await lists.add(self._store, *index.provider_entries(provider_id, specialty_key))

        async def step() -> tuple[ProviderDocument, bool]:
            now = _now_z(self._clock)
            current = await self._providers.read_or_none(provider_id)
            check_if_match(if_match, None if current is None else stored_etag(current), "provider")
            item = ProviderDocument.model_validate(
                {
                    **body,
                    "id": provider_id,
                    "specialtyKey": specialty_key,
                    "createdAt": current.created_at if current else now,
                    "updatedAt": now,
                }
            )
            try:
                if current is None:
                    stored = await self._providers.create(item)
                else:
                    item = item.over(current)
                    stored = await self._providers.replace(item)
            except (Conflict, PreconditionFailed, NotFound):
                raise Again() from None  # a concurrent write: apply on top of it
            if current is not None and current.specialty_key != specialty_key:
                old_list = index.specialty_list(current.specialty_key)
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

    async def provider(self, provider_id: str) -> ProviderDocument:
        check_provider_id(provider_id)
        found = await self._providers.read_or_none(provider_id)
        if found is None:
            raise NotFound("No such provider.")
        return found

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
            found += [TakenSlot(i.id, parse_stamp(i.start), parse_stamp(i.end), i.status) for i in page.items]
            continuation = page.continuation
            if not continuation:
                return found

    async def free_slots(self, provider_id: str, query: SlotQuery) -> FreeSlots:
        """One page of bookable slots (shared/scheduling/slot_search.py)."""
        provider = await self.provider(provider_id)
        calendar = Calendar.of(provider.body())
        window = _window(query, calendar)
        after = after_of(query.continuationToken, provider_id, window) if query.continuationToken else None

        async def taken_between(start: datetime, end: datetime) -> list[TakenSlot]:
            return await self.taken(provider_id, start, end)

        free, more = await free_page(
            taken_between, calendar, window, now=self._clock.now(), after=after, limit=query.maxItems
        )
        return FreeSlots(
            providerId=provider_id,
            timeZone=provider.time_zone,
            slots=[Slot(start=stamp(s), end=stamp(e)) for s, e in free],
            continuationToken=page_token(provider_id, window, free[-1][0]) if more else None,
        )

    async def slot_states(
        self, provider_id: str, query: SlotQuery
    ) -> tuple[list[tuple[datetime, datetime]], list[TakenSlot]]:
        """Free (bookable) slots and taken slot documents in the window, for the FHIR view."""
        provider = await self.provider(provider_id)
        return await self._search(provider_id, Calendar.of(provider.body()), query)

    async def _search(
        self, provider_id: str, calendar: Calendar, query: SlotQuery
    ) -> tuple[list[tuple[datetime, datetime]], list[TakenSlot]]:
        start, end = _window(query, calendar)
        earliest, last_day = calendar.bookable_window(self._clock.now())
        taken = await self.taken(provider_id, start, end + calendar.slot)
        return free_of(calendar.slots_between(max(start, earliest), end), taken, calendar, last_day), [
            t for t in taken if t.start < end and t.end > start
        ]

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


def _is_active(item: AppointmentDocument) -> bool:
    return item.status in {"booked", "arrived", "fulfilled", "noshow"}


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
