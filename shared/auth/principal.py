"""Who is calling, and the roles the brief defines."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    PATIENT = "Patient"
    AGENT = "Agent"
    SUPERVISOR = "Supervisor"
    ADMINISTRATOR = "Administrator"
    KNOWLEDGE_MANAGER = "KnowledgeManager"
    CLINICAL_USER = "ClinicalUser"
    INTEGRATION_ADMIN = "IntegrationAdmin"
    BOT = "Bot.Escalate"


STAFF_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMINISTRATOR})
PATIENT_ONLY = frozenset({str(Role.PATIENT)})

# Where a principal's token came from: a dev HS256 token, the organisation's Entra tenant
# (staff and bots), the patients' External ID tenant, or a signed webhook delivery.
Provider = Literal["dev", "staff", "patient", "webhook", "system"]


@dataclass(frozen=True)
class Principal:
    """`subject` is the caller's stable id: `oid` for Entra tokens (the same in every app of the
    tenant, what administrators see), `sub` for dev tokens. `issuer` with `subject` names the
    account (the key of a patient's sign-in link)."""

    subject: str
    name: str | None
    roles: frozenset[str]
    patient_id: str | None = None
    provider: Provider = "dev"
    issuer: str | None = None

    def __post_init__(self) -> None:
        if self.provider == "patient":
            # The patients' tenant can only ever vouch for a patient, whatever roles its tokens claim.
            object.__setattr__(self, "roles", PATIENT_ONLY)

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_clinical(self) -> bool:
        return Role.CLINICAL_USER in self.roles

    @property
    def acts_as_patient_only(self) -> bool:
        """A patient without any staff role: scoped to their own records."""
        if self.provider == "patient":
            return True
        return Role.PATIENT in self.roles and not (self.roles & STAFF_ROLES)

    @property
    def needs_link(self) -> bool:
        """A patient whose token names no patient record: the record is found through the
        account's sign-in link (redeemed with a code from staff)."""
        return self.acts_as_patient_only and not self.patient_id

    @property
    def primary_role(self) -> str:
        for role in (Role.ADMINISTRATOR, Role.SUPERVISOR, Role.AGENT, Role.PATIENT, Role.BOT):
            if role in self.roles:
                return str(role)
        return next(iter(sorted(self.roles)), "none")
