"""Scheduling's paged lists in the `lists` container (shared/kernel/lists.py walks them):

* `providers` → every provider (entry id = provider id);
* `providers-by-specialty:<specialtyKey>` → providers of one (casefolded) specialty;
* `patient-appointments:<patientId>` → a patient's appointments (`<start>|<appointmentId>`);
* `provider-appointments:<providerId>` → a provider's appointments, a day being a `sortKey` range
  (`<start>|<appointmentId>`).
"""

from __future__ import annotations

from shared.kernel.documents import DocumentStore
from shared.kernel.lists import ListEntry, entry, remove


def providers_list() -> str:
    return "providers"


def specialty_list(specialty_key: str) -> str:
    return f"providers-by-specialty:{specialty_key}"


def patient_appointments_list(patient_id: str) -> str:
    return f"patient-appointments:{patient_id}"


def provider_appointments_list(provider_id: str) -> str:
    return f"provider-appointments:{provider_id}"


def appointment_entry(list_key: str, appointment_id: str, start: str) -> ListEntry:
    # The start is part of the id: a reschedule adds the new entry before it moves the appointment
    # and removes the old one after, and readers keep only the entry matching the stored start.
    key = f"{start}|{appointment_id}"
    return entry(list_key, appointment_id, key, id=key, start=start)


def provider_entries(provider_id: str, specialty_key: str) -> list[ListEntry]:
    return [
        entry(providers_list(), provider_id, provider_id),
        entry(specialty_list(specialty_key), provider_id, provider_id),
    ]


def appointment_entries(
    appointment_id: str, patient_id: str, provider_id: str, start: str
) -> list[ListEntry]:
    return [
        appointment_entry(patient_appointments_list(patient_id), appointment_id, start),
        appointment_entry(provider_appointments_list(provider_id), appointment_id, start),
    ]


async def remove_appointment(
    store: DocumentStore, patient_id: str, provider_id: str, start: str, id: str
) -> None:
    for item in appointment_entries(id, patient_id, provider_id, start):
        await remove(store, item.list, item.id)
