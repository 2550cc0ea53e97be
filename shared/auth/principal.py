"""Who is calling, and the roles the brief defines."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


@dataclass(frozen=True)
class Principal:
    subject: str
    name: str | None
    roles: frozenset[str]
    patient_id: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_clinical(self) -> bool:
        return Role.CLINICAL_USER in self.roles

    @property
    def acts_as_patient_only(self) -> bool:
        """A patient without any staff role: scoped to their own records."""
        return Role.PATIENT in self.roles and not (self.roles & STAFF_ROLES)

    @property
    def primary_role(self) -> str:
        for role in (Role.ADMINISTRATOR, Role.SUPERVISOR, Role.AGENT, Role.PATIENT, Role.BOT):
            if role in self.roles:
                return str(role)
        return next(iter(sorted(self.roles)), "none")
