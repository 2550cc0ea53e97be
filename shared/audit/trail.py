"""The audit trail: who read or changed which patient's data, when, under which correlation id.

Records go to their own container (partitioned by patient, so "everything that touched this
patient" is one partition query) and are never updated. Writing the audit record is part of the
operation: if it cannot be written, the request fails rather than leaving an unaudited access.
"""

from __future__ import annotations

import uuid
from typing import Literal

from shared.auth.principal import Principal
from shared.kernel.catalog import AUDIT as AUDIT_CONTAINER
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.times import stamp

NO_PATIENT = "-"

Action = Literal["read", "create", "update", "delete", "list", "export", "assign", "transfer", "close"]


async def record_access(
    store: DocumentStore,
    clock: Clock,
    *,
    actor: Principal,
    action: Action,
    resource: str,
    patient_id: str | None,
    correlation_id: str | None,
    outcome: Literal["success", "denied"] = "success",
) -> None:
    await store.container(AUDIT_CONTAINER).create(
        {
            "id": uuid.uuid4().hex,
            "patientId": patient_id or NO_PATIENT,
            "actor": actor.subject,
            "roles": sorted(actor.roles),
            "action": action,
            "resource": resource,
            "outcome": outcome,
            "at": stamp(clock.now()),
            "correlationId": correlation_id,
        }
    )
