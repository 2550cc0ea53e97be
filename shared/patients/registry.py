"""Patient registry: read and write a patient's profile and (for clinical staff) clinical fields.

One document per patient in `patients` (partition key `/id`, so every access is a point
operation). Writes are optimistic: with `If-Match` the caller's ETag must still be current (412
otherwise); without it the service re-reads and retries a lost race itself, so two concurrent
writers never silently drop each other's clinical fields.

Every write keeps the contact index in `lookups` current (see shared/patients/matching.py):
new e-mail/phone keys are added before the patient document is written and old ones removed after
it, so the index is a superset of the truth even when a process dies in between.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.audit.api import record_access
from shared.auth.principal import Principal
from shared.kernel.catalog import PATIENTS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from shared.kernel.etags import IfMatch, check_if_match, entity_tag
from shared.kernel.observability import mark_phi
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Stored as Stored_
from shared.kernel.times import stamp
from shared.patients.documents import PatientDocument
from shared.patients.matching import ContactIndex, contacts_of
from shared.patients.model import (
    CLINICAL_FIELDS,
    PROFILE_FIELDS,
    PatientProfile,
    PatientRecord,
    check_patient_id,
)

log = logging.getLogger("psc.patients")

_RETRIES = 12


@dataclass(frozen=True)
class Stored:
    """A patient record as written or read, and whether this write created it."""

    item: PatientDocument
    created: bool = False

    @property
    def etag(self) -> str:
        return entity_tag(self.item.etag)


async def patient_exists(store: DocumentStore, patient_id: str) -> bool:
    """Whether a patient record exists (one point read; not audited: it reveals no patient data,
    and callers that go on to use the record audit that use)."""
    return await Stored_(store, PATIENTS, PatientDocument).read_or_none(patient_id) is not None


def _phi_of(doc: PatientDocument) -> None:
    mark_phi(*(v for k, v in doc.fields((*PROFILE_FIELDS, *CLINICAL_FIELDS)).items() if k != "consent"))


def profile_of(doc: PatientDocument) -> PatientProfile:
    return PatientProfile.model_validate(doc.fields(PROFILE_FIELDS))


def record_of(doc: PatientDocument, *, clinical: bool) -> PatientRecord:
    data = doc.fields((*PROFILE_FIELDS, *CLINICAL_FIELDS) if clinical else PROFILE_FIELDS)
    return PatientRecord.model_validate(
        {**data, "id": doc.id, "provisional": doc.provisional, "mergedInto": doc.merged_into}
    )


class PatientRegistry:
    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self._patients = Stored_(store, PATIENTS, PatientDocument)
        self._store = store
        self._clock = clock
        self._contacts = ContactIndex(store)

    async def _index_added(self, new: PatientDocument, old: PatientDocument | None) -> None:
        """Before a write: index the contacts the new version adds (ETag-checked per key)."""
        for key in contacts_of(new).keys() - contacts_of(old).keys():
            await self._contacts.add(key, new.id)

    async def _unindex_removed(self, new: PatientDocument, old: PatientDocument) -> None:
        """After a write: drop the contacts it removed. Best effort: the write and its audit
        record already happened, and matching ignores stale entries (it re-reads the patient)."""
        for key in contacts_of(old).keys() - contacts_of(new).keys():
            try:
                await self._contacts.remove(key, new.id)
            except Exception as error:
                log.warning(
                    "contact index entry left stale",
                    extra={"patient_id": new.id, "error_type": type(error).__name__},
                )

    async def _audit(self, actor: Principal, action: Any, patient_id: str, correlation_id: str) -> None:
        await record_access(
            self._store,
            self._clock,
            actor=actor,
            action=action,
            resource=f"patients/{patient_id}",
            patient_id=patient_id,
            correlation_id=correlation_id,
        )

    async def read(self, actor: Principal, patient_id: str, correlation_id: str) -> Stored:
        check_patient_id(patient_id)
        doc = await self._patients.read_or_none(patient_id)
        if doc is None:
            raise NotFound("No such patient.")
        _phi_of(doc)
        await self._audit(actor, "read", patient_id, correlation_id)
        return Stored(doc)

    async def write(
        self,
        actor: Principal,
        patient_id: str,
        changes: dict[str, Any],
        *,
        if_match: IfMatch | None,
        correlation_id: str,
    ) -> Stored:
        """Apply `changes` (field → JSON value) to the patient's document, creating it if absent.
        With `if_match` only over the version the caller read (`*`: only if it exists)."""
        check_patient_id(patient_id)
        mark_phi(*changes.values())

        async def step() -> Stored:
            now = stamp(self._clock.now())
            current = await self._patients.read_or_none(patient_id)
            check_if_match(if_match, None if current is None else entity_tag(current.etag), "patient record")
            if current is None:
                fresh = PatientDocument.model_validate(
                    {"id": patient_id, "provisional": False, "createdAt": now, **changes, "updatedAt": now}
                )
                await self._index_added(fresh, None)
                try:
                    created = await self._patients.create(fresh)
                except Conflict:
                    raise Again() from None  # created concurrently: apply on top of it
                await self._audit(actor, "create", patient_id, correlation_id)
                return Stored(created, created=True)
            updated = PatientDocument.model_validate({**current.body(), **changes, "updatedAt": now})
            updated = updated.over(current)
            await self._index_added(updated, current)
            try:
                replaced = await self._patients.replace(updated)
            except (PreconditionFailed, NotFound):
                # A concurrent write: with If-Match the next round's check answers 412.
                raise Again() from None
            await self._audit(actor, "update", patient_id, correlation_id)
            await self._unindex_removed(updated, current)
            return Stored(replaced)

        return await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The patient record is being changed concurrently; retry."),
        )


def profile_changes(profile: PatientProfile) -> dict[str, Any]:
    """A PUT replaces every profile field (absent optional ones are cleared)."""
    data = profile.model_dump(mode="json")
    return {name: data.get(name) for name in PROFILE_FIELDS}


def record_changes(record: PatientRecord, *, clinical: bool) -> dict[str, Any]:
    """Profile fields are replaced wholesale; clinical fields change only when the body carries
    them, and only for ClinicalUser (a non-clinical agent cannot see them, so cannot send them)."""
    sent_clinical = [name for name in CLINICAL_FIELDS if name in record.model_fields_set]
    if sent_clinical and not clinical:
        raise Forbidden("Clinical fields need the ClinicalUser role.")
    data = record.model_dump(mode="json")  # already validated as a profile: PatientRecord extends it
    return {name: data.get(name) for name in (*PROFILE_FIELDS, *sent_clinical)}
