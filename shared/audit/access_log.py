"""Reading the audit trail: a patient's access log (who read or changed the record, when, through
which operation), one partition, newest first, paged; and carrying a merged record's trail over
to the patient it was merged into.

Merging copies, never moves: the trail is append-only, so the provisional patient keeps its own
records and the survivor gets a copy of each (`merged:<original id>`, created only if absent, so
a merge run again copies nothing twice) marked with `mergedFrom`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.audit.model import Action, AuditRecord
from shared.kernel.catalog import AUDIT
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import Conflict, ValidationFailed
from shared.kernel.lists import seal, unseal
from shared.kernel.stored import Stored
from shared.kernel.times import Instant, InstantText, stamp

MAX_PAGE = 200


class TrailEntry(AuditRecord):
    """An audit record as read back: an original, or a copy from a merged patient."""

    merged_from: str | None = None


class TrailCopy(AuditRecord):
    merged_from: str


class AccessLogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    from_: Instant = Field(alias="from", description="Inclusive start.")
    to: Instant = Field(description="Exclusive end.")
    maxItems: int = Field(50, ge=1, le=MAX_PAGE)
    continuationToken: str | None = Field(None, min_length=1, max_length=2048)


class Access(BaseModel):
    at: InstantText
    actor: str = Field(description="The staff member's id (oid), the patient's id, or the bot.")
    roles: list[str]
    action: Action
    resource: str = Field(description="The operation's resource path.")
    outcome: Literal["success", "denied"]
    correlationId: str | None = None
    mergedFrom: str | None = Field(
        None, description="Recorded on the provisional patient merged into this one."
    )


class AccessLog(BaseModel):
    items: list[Access]
    continuationToken: str | None = None


def _scope(patient_id: str, start: str, end: str) -> str:
    return f"access-log:{patient_id}:{start}:{end}"


async def access_log(
    store: DocumentStore,
    patient_id: str,
    start: datetime,
    end: datetime,
    *,
    max_items: int,
    token: str | None,
) -> AccessLog:
    """One page of the patient's audit partition in [start, end), newest first."""
    if start >= end:
        raise ValidationFailed([{"field": "query.to", "message": "must be after from"}])
    low, high = stamp(start), stamp(end)
    scope = _scope(patient_id, low, high)
    state = unseal(scope, token)
    inner = None
    if state is not None:
        inner = state.get("c")
        if set(state) != {"c"} or not isinstance(inner, str):
            raise ValidationFailed(
                [{"field": "query.continuationToken", "message": "is not a token this list handed out"}]
            )
    page = await Stored(store, AUDIT, TrailEntry).query(
        Query((where("at", ">=", low), where("at", "<", high)), order_by=(("at", True),)),
        partition_key=patient_id,
        max_items=max_items,
        continuation=inner,
    )
    items = [
        Access(
            at=r.at,
            actor=r.actor,
            roles=list(r.roles),
            action=r.action,
            resource=r.resource,
            outcome=r.outcome,
            correlationId=r.correlation_id,
            mergedFrom=r.merged_from,
        )
        for r in page.items
    ]
    following = None if page.continuation is None else {"c": page.continuation}
    return AccessLog(items=items, continuationToken=seal(scope, following))


async def copy_trail(store: DocumentStore, from_patient: str, to_patient: str) -> int:
    """Copy every record of `from_patient`'s trail into `to_patient`'s; returns how many were new."""
    records = Stored(store, AUDIT, TrailEntry)
    copies = Stored(store, AUDIT, TrailCopy)
    copied = 0
    token: str | None = None
    while True:
        page = await records.query(Query(), partition_key=from_patient, max_items=100, continuation=token)
        for record in page.items:
            # A copy of a copy keeps the first origin.
            origin = record.merged_from if record.merged_from is not None else from_patient
            fields: dict[str, Any] = record.model_dump(exclude={"id", "patient_id", "merged_from"})
            copy = TrailCopy(id=f"merged:{record.id}", patient_id=to_patient, merged_from=origin, **fields)
            try:
                await copies.create(copy)
                copied += 1
            except Conflict:
                pass  # copied by an earlier run
        token = page.continuation
        if token is None:
            return copied
