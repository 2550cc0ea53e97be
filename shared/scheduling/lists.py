"""Scheduling's paged lists: providers (optionally of one specialty), a patient's appointments,
and a provider's day. Each reads one partition of the `lists` index (shared/kernel/lists.py)
and re-reads the members, so no query crosses partitions and the order is stable across pages.

Reads of appointments are audited like every read of patient data: a patient's list once for
that patient, a provider's day once per patient on the page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta

from shared.audit.api import record_access
from shared.auth.principal import Principal
from shared.kernel import lists
from shared.kernel.catalog import APPOINTMENTS, LISTS, PROVIDERS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import NotFound
from shared.kernel.observability import mark_phi
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.scheduling import index
from shared.scheduling.documents import AppointmentDocument, ProviderDocument
from shared.scheduling.model import Calendar
from shared.scheduling.providers import check_provider_id

Loader = Callable[[lists.ListEntry, lists.Segment], Awaitable[AppointmentDocument | None]]


async def list_providers(
    store: DocumentStore, specialty: str | None, limit: int, token: str | None
) -> tuple[list[ProviderDocument], str | None]:
    """Providers by id; with `specialty`, only that one (compared casefolded)."""
    key = specialty.casefold() if specialty else None
    list_key = index.specialty_list(key) if key is not None else index.providers_list()

    providers = Stored(store, PROVIDERS, ProviderDocument)

    async def load(entry: lists.ListEntry, _: lists.Segment) -> ProviderDocument | None:
        item = await providers.read_or_none(entry.ref)
        if item is None or (key is not None and item.specialty_key != key):
            return None  # removed, or its specialty changed since the entry was written
        return item

    return await lists.read_page(store, list_key, [lists.Segment("0", list_key)], token, limit, load)


def _appointment_loader(store: DocumentStore, **owner: str) -> Loader:
    """Keeps an entry's appointment only if it stands where the entry says: same start (a
    reschedule lists the new start before it moves) and the same patient or provider."""

    appointments = Stored(store, APPOINTMENTS, AppointmentDocument)

    async def load(entry: lists.ListEntry, _: lists.Segment) -> AppointmentDocument | None:
        item = await appointments.read_or_none(entry.ref)
        if item is None or item.tombstone or item.start != entry.start:
            return None
        body = item.body()
        if any(body.get(field) != value for field, value in owner.items()):
            return None
        return item

    return load


async def patient_appointments(
    store: DocumentStore,
    clock: Clock,
    actor: Principal,
    patient_id: str,
    limit: int,
    token: str | None,
    *,
    resource: str,
    correlation_id: str,
) -> tuple[list[AppointmentDocument], str | None]:
    """A patient's appointments by start (every status), audited as one `list` of that patient."""
    list_key = index.patient_appointments_list(patient_id)
    items, following = await lists.read_page(
        store,
        list_key,
        [lists.Segment("0", list_key)],
        token,
        limit,
        _appointment_loader(store, patientId=patient_id),
    )
    _mask_reasons(items)
    await record_access(
        store,
        clock,
        actor=actor,
        action="list",
        resource=resource,
        patient_id=patient_id,
        correlation_id=correlation_id,
    )
    return items, following


def _mask_reasons(items: list[AppointmentDocument]) -> None:
    # Free text from patients: masked if anything logs it. Marked here, in the request's own
    # context: the loads ran as tasks, whose context changes the request never sees.
    mark_phi(*(item.reason for item in items))


def day_bounds(calendar: Calendar, day: date) -> tuple[str, str]:
    """The UTC instants (as stored starts) where `day` begins and the next day begins on the
    provider's wall clock: 23, 24 or 25 hours apart across DST changes."""
    begin = datetime.combine(day, time(0), tzinfo=calendar.zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=calendar.zone).astimezone(UTC)
    return stamp(begin), stamp(end)


async def provider_day(
    store: DocumentStore,
    clock: Clock,
    actor: Principal,
    provider_id: str,
    day: date,
    limit: int,
    token: str | None,
    *,
    correlation_id: str,
) -> tuple[list[AppointmentDocument], str | None]:
    """A provider's appointments starting on `day` in the provider's time zone, by start. The
    list holds all of the provider's appointments; the day is a `sortKey` range of it, computed
    from the provider's zone now (a zone changed since booking still finds the right ones)."""
    check_provider_id(provider_id)
    provider = await Stored(store, PROVIDERS, ProviderDocument).read_or_none(provider_id)
    if provider is None:
        raise NotFound("No such provider.")
    begin, end = day_bounds(Calendar.of(provider.body()), day)
    list_key = index.provider_appointments_list(provider_id)
    segment = lists.Segment("0", list_key, (where("sortKey", ">=", begin), where("sortKey", "<", end)))
    items, following = await lists.read_page(
        store,
        f"provider-day:{provider_id}:{day.isoformat()}",
        [segment],
        token,
        limit,
        _appointment_loader(store, providerId=provider_id),
    )
    _mask_reasons(items)
    for patient_id in sorted({str(item.patient_id) for item in items}):
        await record_access(
            store,
            clock,
            actor=actor,
            action="list",
            resource=f"providers/{provider_id}/appointments/{day.isoformat()}",
            patient_id=patient_id,
            correlation_id=correlation_id,
        )
    return items, following


async def appointments_around(
    store: DocumentStore, patient_id: str, now: str, *, upcoming: int, recent: int
) -> tuple[list[AppointmentDocument], list[AppointmentDocument], dict[str, ProviderDocument]]:
    """For the unified patient view: the patient's next `upcoming` appointments (from `now`, soonest
    first, cancelled and entered-in-error left out) and last `recent` ones (before `now`, latest
    first), and their providers by id. Two in-partition queries of the patient's list, then point
    reads of the appointments and of each provider once. Not audited: the caller audits the view."""
    entries = Stored(store, LISTS, lists.ListEntry)
    list_key = index.patient_appointments_list(patient_id)
    ahead, behind = await asyncio.gather(
        entries.query(
            Query((where("sortKey", ">=", now),), order_by=(("sortKey", False),)),
            partition_key=list_key,
            max_items=upcoming,
        ),
        entries.query(
            Query((where("sortKey", "<", now),), order_by=(("sortKey", True),)),
            partition_key=list_key,
            max_items=recent,
        ),
    )
    load = _appointment_loader(store, patientId=patient_id)
    segment = lists.Segment("0", list_key)

    async def members(page: list[lists.ListEntry]) -> list[AppointmentDocument]:
        found = await asyncio.gather(*(load(item, segment) for item in page))
        return [item for item in found if item is not None]

    soon, past = await asyncio.gather(members(list(ahead.items)), members(list(behind.items)))
    soon = [item for item in soon if item.status not in ("cancelled", "entered-in-error")]
    _mask_reasons([*soon, *past])
    provider_ids = sorted({item.provider_id for item in (*soon, *past)})
    providers = Stored(store, PROVIDERS, ProviderDocument)
    read = await asyncio.gather(*(providers.read_or_none(pid) for pid in provider_ids))
    return soon, past, {doc.id: doc for doc in read if doc is not None}
