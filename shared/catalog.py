"""Every container and queue the code uses: the one list that adapters, the dev host, the infra
tests and docs/ARCHITECTURE.md agree on. Add here first; `infra/` must follow (a test checks)."""

from __future__ import annotations

from shared.ports.documents import ContainerSpec
from shared.ports.messages import QueueSpec

SIX_YEARS = 6 * 365 * 24 * 3600  # HIPAA keeps audit documentation six years

CONTAINERS: dict[str, ContainerSpec] = {
    spec.name: spec
    for spec in (
        ContainerSpec(
            "patients",
            "/id",
            description="One document per patient (the registry); id = the token's patient_id.",
        ),
        ContainerSpec(
            "audit",
            "/patientId",
            default_ttl=SIX_YEARS,
            description="Append-only audit trail of every read or change of patient data.",
        ),
    )
}

QUEUES: dict[str, QueueSpec] = {}
