"""The audit trail's document: who did what to which patient's data, when, under which
correlation id. Append-only; partitioned by patient."""

from __future__ import annotations

from typing import Literal

from shared.kernel.stored import Document

Action = Literal[
    "read", "create", "update", "delete", "list", "export", "assign", "transfer", "close", "merge"
]
NO_PATIENT = "-"


class AuditRecord(Document):
    patient_id: str
    actor: str
    roles: list[str]
    action: Action
    resource: str
    outcome: Literal["success", "denied"] = "success"
    at: str
    correlation_id: str | None = None
