"""Which patient an escalation is about, without a cross-partition query on the hot path.

Order: the patient id the bot sent, when that patient exists; else the one patient whose e-mail
or phone matches; else a provisional patient record with an id derived from the bot conversation's
key (a hash of the calling bot and its conversation id; a retried delivery finds and reuses it).
`PatientMatch.method` records which way it went.

The contact index lives in `lookups` (partition key `/id`, point reads only):
`contact:email:<sha256(lower-cased e-mail)>` and `contact:phone:<sha256(E.164)>`, each holding the
ids of the patients with that contact. PatientRegistry keeps it current: ids are added *before*
the patient write and removed *after* it, so the index is always a superset of the truth, even
when a process dies in between; matching re-reads each candidate and keeps only those whose
document really carries the contact, so a stale entry can never produce a wrong match.
Index documents change with ETag-checked replaces (several instances write at once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.kernel.catalog import LOOKUPS, PATIENTS
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.patients.documents import ContactIndexEntry, PatientDocument
from shared.patients.model import PatientIdentity, check_patient_id

log = logging.getLogger("psc.patients.matching")

PROVISIONAL_PREFIX = "prov-"
# Reading more candidates than this per contact is pointless: two verified ones already make the
# match ambiguous.
MAX_CANDIDATES = 20
_RETRIES = 20

Method = Literal["id", "email", "phone", "provisional"]
ContactKind = Literal["email", "phone"]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def normalize_email(value: object) -> str | None:
    text = str(value).strip().lower() if value else ""
    return text if "@" in text and len(text) <= 320 else None


def normalize_phone(value: object) -> str | None:
    """E.164, or None when the value is not an international phone number."""
    if not value:
        return None
    import phonenumbers  # loaded by the first phone number, not at cold start

    try:
        number = phonenumbers.parse(str(value), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def contact_key(kind: ContactKind, normalized: str) -> str:
    return f"contact:{kind}:{_sha(normalized)}"


def contacts_of(doc: PatientDocument | Mapping[str, Any] | None) -> dict[str, tuple[ContactKind, str]]:
    """Index key → (kind, normalised value) for a patient document's e-mail and phone."""
    keys: dict[str, tuple[ContactKind, str]] = {}
    if doc is None:
        return keys
    found = doc.body() if isinstance(doc, PatientDocument) else doc
    if email := normalize_email(found.get("email")):
        keys[contact_key("email", email)] = ("email", email)
    if phone := normalize_phone(found.get("phone")):
        keys[contact_key("phone", phone)] = ("phone", phone)
    return keys


async def patients_with_phone(store: DocumentStore, number: str) -> list[str]:
    """The patients whose record holds this phone number (the contact index; callers re-read the
    records, as the index may lag a change)."""
    phone = normalize_phone(number)
    return [] if phone is None else await ContactIndex(store).patient_ids(contact_key("phone", phone))


def provisional_patient_id(conversation_key: str) -> str:
    return PROVISIONAL_PREFIX + _sha(conversation_key)[:32]


class ContactIndex:
    def __init__(self, store: DocumentStore) -> None:
        self._entries = Stored(store, LOOKUPS, ContactIndexEntry)

    async def patient_ids(self, key: str) -> list[str]:
        entry = await self._entries.read_or_none(key)
        return [] if entry is None else list(entry.patient_ids)

    async def _change(self, key: str, patient_id: str, *, add: bool) -> None:
        async def step() -> None:
            entry = await self._entries.read_or_none(key)
            if entry is None:
                if not add:
                    return
                try:
                    await self._entries.create(ContactIndexEntry(id=key, patient_ids=[patient_id]))
                    return
                except Conflict:
                    raise Again() from None
            ids = list(entry.patient_ids)
            if (patient_id in ids) == add:
                return  # already as wanted
            ids = [*ids, patient_id] if add else [p for p in ids if p != patient_id]
            try:
                if ids:
                    await self._entries.replace(entry.changed(patient_ids=ids))
                else:
                    await self._entries.delete(key, etag=entry.etag)
            except (PreconditionFailed, NotFound):
                raise Again() from None

        await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The contact index is being changed concurrently; retry."),
        )

    async def add(self, key: str, patient_id: str) -> None:
        await self._change(key, patient_id, add=True)

    async def remove(self, key: str, patient_id: str) -> None:
        await self._change(key, patient_id, add=False)


async def index_patient(store: DocumentStore, doc: PatientDocument | Mapping[str, Any]) -> None:
    """Add a patient document's e-mail and phone to the index (for seeds and imports that write
    patient documents directly rather than through PatientRegistry)."""
    patient = doc if isinstance(doc, PatientDocument) else PatientDocument.model_validate(doc)
    index = ContactIndex(store)
    for key in contacts_of(patient):
        await index.add(key, patient.id)


@dataclass(frozen=True)
class PatientMatch:
    patient_id: str
    method: Method
    created: bool = False  # a provisional record was created by this call


UNNAMED = "Unidentified patient"


def _registry_fields(identity: PatientIdentity) -> dict[str, Any]:
    """The bot's details that are valid registry values (so staff can read and edit the record
    through the patient routes); an invalid one is left out rather than stored."""
    from shared.patients.model import _email, _language, _phone

    fields: dict[str, Any] = {"name": identity.name or UNNAMED}
    for name, value, check in (
        ("email", identity.email, _email),
        ("phone", identity.phone, _phone),
        ("language", identity.language, _language),
    ):
        if value:
            try:
                fields[name] = check(value)
            except ValueError:
                continue
    if identity.date_of_birth:
        fields["dateOfBirth"] = identity.date_of_birth
    return fields


class PatientMatcher:
    def __init__(self, store: DocumentStore) -> None:
        self._patients = Stored(store, PATIENTS, PatientDocument)
        self._index = ContactIndex(store)

    async def _exists(self, patient_id: str) -> bool:
        try:
            await self._patients.read(patient_id)
        except NotFound:
            return False
        return True

    async def _candidates(self, kind: ContactKind, value: str | None) -> set[str]:
        """Patients whose document really carries this contact (stale index entries dropped)."""
        if value is None:
            return set()
        found: set[str] = set()
        for patient_id in (await self._index.patient_ids(contact_key(kind, value)))[:MAX_CANDIDATES]:
            doc = await self._patients.read_or_none(patient_id)
            if doc is None:
                continue
            if contacts_of(doc).get(contact_key(kind, value)) is not None:
                found.add(patient_id)
                if len(found) > 1:
                    break  # ambiguous already
        return found

    async def match(self, identity: PatientIdentity, conversation_key: str, now: datetime) -> PatientMatch:
        """`conversation_key`: the bot conversation's key, never the bot's raw id."""
        if identity.id and await self._exists_safely(identity.id):
            return PatientMatch(identity.id, "id")
        by_email = await self._candidates("email", normalize_email(identity.email))
        by_phone = await self._candidates("phone", normalize_phone(identity.phone))
        # Both given: only a patient carrying both counts; otherwise whichever was given.
        both = by_email & by_phone if by_email and by_phone else by_email or by_phone
        if len(both) == 1:
            return PatientMatch(next(iter(both)), "email" if len(by_email) == 1 else "phone")
        return await self._provisional(identity, conversation_key, now)

    async def _exists_safely(self, patient_id: str) -> bool:
        try:
            check_patient_id(patient_id)
        except ValidationFailed:
            return False  # not an id we could have issued: match by contact instead
        return await self._exists(patient_id)

    async def _provisional(
        self, identity: PatientIdentity, conversation_key: str, now: datetime
    ) -> PatientMatch:
        """A provisional patient with a deterministic id, so a retried delivery reuses it. It is
        not put in the contact index: only a record staff confirm (a PatientRegistry write) is."""
        patient_id = provisional_patient_id(conversation_key)
        at = stamp(now)
        doc = PatientDocument.model_validate(
            {
                "id": patient_id,
                "provisional": True,
                "source": "escalation",
                "createdAt": at,
                "updatedAt": at,
                **_registry_fields(identity),
            }
        )
        try:
            await self._patients.create(doc)
        except Conflict:
            return PatientMatch(patient_id, "provisional")
        log.info("provisional patient created", extra={"patient_id": patient_id})
        return PatientMatch(patient_id, "provisional", created=True)
