"""Moving a provisional patient's appointments to the patient it was merged into (record hygiene:
shared/workspace/merge.py runs the merge).

Each appointment on the list `patient-appointments:<from>` is listed under the survivor first,
then changed to name the survivor (ETag-checked), then unlisted from the old list: the order every
list writer keeps (shared/kernel/lists.py), so a crash in between leaves an entry readers skip and
a second run finishes the move. An appointment already naming the survivor is only unlisted.
"""

from __future__ import annotations

import contextlib

from shared.kernel.catalog import APPOINTMENTS, LISTS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query
from shared.kernel.errors import NotFound
from shared.kernel.lists import ListEntry, add, remove
from shared.kernel.outbox import Aggregates
from shared.kernel.retry import retry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.scheduling.documents import AppointmentDocument
from shared.scheduling.index import appointment_entry, patient_appointments_list


async def move_patient_appointments(store: DocumentStore, clock: Clock, from_id: str, to_id: str) -> int:
    """Returns how many appointments changed patient (0 when run again)."""
    entries = Stored(store, LISTS, ListEntry)
    appointments = Aggregates(store, APPOINTMENTS, AppointmentDocument)
    old_list = patient_appointments_list(from_id)
    moved = 0
    token: str | None = None
    while True:
        page = await entries.query(Query(), partition_key=old_list, max_items=100, continuation=token)
        for item in page.items:
            if item.start is not None:
                await add(store, appointment_entry(patient_appointments_list(to_id), item.ref, item.start))

            async def step(ref: str = item.ref) -> bool:
                doc = await appointments.read_or_none(ref, ref)
                if doc is None or doc.patient_id != from_id:
                    return False
                at = stamp(clock.now())
                # Its event, so a consumer keyed by patient (reminders) follows the merge; ids only.
                changed = doc.changed(patient_id=to_id, updated=at).emit(
                    "appointment.merged",
                    at,
                    patientId=to_id,
                    previousPatientId=from_id,
                    providerId=doc.provider_id,
                    status=doc.status,
                    start=doc.start,
                    end=doc.end,
                )
                await appointments.replace(changed)
                return True

            with contextlib.suppress(NotFound):
                moved += await retry(step)
            await remove(store, old_list, item.id)
        token = page.continuation
        if token is None:
            return moved
