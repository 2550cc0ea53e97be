"""The patients capability's stored documents: the patient record (`patients`), and in `lookups`
the contact index, sign-in links, link codes and link attempts (shared/patients/matching.py and
links.py say how each is used)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from shared.kernel.stored import Document


class PatientDocument(Document):
    """A patient: the profile a patient edits, the clinical fields clinical staff see, and how the
    record came to be (`provisional` and `source` for one a bot escalation created)."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["patient"] = "patient"
    provisional: bool = False
    source: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    language: str | None = None
    time_zone: str | None = None
    email: str | None = None
    phone: str | None = None
    preferred_channel: str | None = None
    consent: dict[str, bool] | None = None
    quiet_hours: dict[str, str] | None = None
    date_of_birth: str | None = None
    clinical_notes: str | None = None
    # A provisional record merged into a registered one points to it (shared/patients/merging.py);
    # `merge_pending` names references other capabilities still have to move, by kind.
    merged_into: str | None = None
    merged_at: str | None = None
    merged_by: str | None = None
    merge_pending: dict[str, list[str]] | None = None
    # What the merge moved, by kind, once it moved it (the merge's answer, the same every time).
    merge_moved: dict[str, list[str]] | None = None

    @property
    def first_name(self) -> str:
        """How a script greets the patient: the given name, else the first word of the name."""
        if self.given_name:
            return self.given_name
        return (self.name or "").split(" ", 1)[0]

    def fields(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named fields (as stored, camelCase) that hold a value."""
        body = self.body()
        return {name: body[name] for name in names if body.get(name) is not None}


class ContactIndexEntry(Document):
    """`contact:<email|phone>:<sha256>` → the patients with that contact."""

    type: Literal["contact-index"] = "contact-index"
    patient_ids: list[str]


class PatientLink(Document):
    """`patient-link:<sha256(issuer, oid)>` → the patient a sign-in acts for."""

    type: Literal["patient-link"] = "patient-link"
    patient_id: str
    issuer: str | None = None
    subject: str
    linked_at: str


class LinkCode(Document):
    """`link-code:<sha256(code)>`: a one-time code staff issued, and once redeemed by whom."""

    type: Literal["patient-link-code"] = "patient-link-code"
    patient_id: str
    created_by: str
    created_at: str
    expires_at: str
    ttl: int
    used_by: str | None = None
    used_at: str | None = None


class Attempt(BaseModel):
    id: str
    at: float  # epoch seconds


class LinkAttempts(Document):
    """`link-attempts:<account>`: an account's code redemptions in the last hour."""

    type: Literal["link-attempts"] = "link-attempts"
    attempts: list[Attempt]
    ttl: int
