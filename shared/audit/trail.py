"""The audit trail: who read or changed which patient's data, when, under which correlation id.

Records go to their own container (partitioned by patient, so "everything that touched this
patient" is one partition query) and are never updated. Writing the audit record is part of the
operation: if it cannot be written, the request fails rather than leaving an unaudited access.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

from shared.audit.model import NO_PATIENT, Action, AuditRecord
from shared.auth.principal import Principal
from shared.kernel.catalog import AUDIT as AUDIT_CONTAINER
from shared.kernel.clock import Clock
from shared.kernel.documents import BatchFailed, BatchOperation, DocumentStore
from shared.kernel.stored import Stored
from shared.kernel.times import stamp

__all__ = ["NO_PATIENT", "Action", "record_access", "record_accesses"]


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
    record = AuditRecord(
        id=uuid.uuid4().hex,
        patient_id=patient_id or NO_PATIENT,
        actor=actor.subject,
        roles=sorted(actor.roles),
        action=action,
        resource=resource,
        outcome=outcome,
        at=stamp(clock.now()),
        correlation_id=correlation_id,
    )
    await Stored(store, AUDIT_CONTAINER, AuditRecord).create(record)


async def record_accesses(
    store: DocumentStore,
    clock: Clock,
    *,
    actor: Principal,
    patient_id: str | None,
    accesses: Sequence[tuple[Action, str]],
    correlation_id: str | None,
) -> None:
    """Several accesses to one patient's data by one request, (action, resource) each, written in
    one transaction (the audit container is partitioned by patient: one round trip)."""
    at = stamp(clock.now())
    patient = patient_id or NO_PATIENT
    records = [
        AuditRecord(
            id=uuid.uuid4().hex,
            patient_id=patient,
            actor=actor.subject,
            roles=sorted(actor.roles),
            action=action,
            resource=resource,
            at=at,
            correlation_id=correlation_id,
        )
        for action, resource in accesses
    ]
    if len(records) == 1:
        await Stored(store, AUDIT_CONTAINER, AuditRecord).create(records[0])
        return
    try:
        await store.container(AUDIT_CONTAINER).batch(
            patient, [BatchOperation.create(record.body()) for record in records]
        )
    except BatchFailed as failed:
        raise failed.error from None
