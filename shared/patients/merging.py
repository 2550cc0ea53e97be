"""Merging a provisional patient record (made by a bot escalation that matched nobody) into the
registered patient it turns out to be: the registry's side. The provisional record stays, pointing
to the survivor (`mergedInto`), so every reference still naming it (a sign-in link, a stale list
entry, an event) resolves to the survivor; `mergePending` notes the references other capabilities
still have to move. Moving them is the merge's orchestration (shared/workspace/merge.py), which may
use every capability's public module; the registry sits below scheduling and conversations.
"""

from __future__ import annotations

from shared.kernel.catalog import PATIENTS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, NotFound, UnprocessableContent, ValidationFailed
from shared.kernel.retry import retry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.patients.documents import PatientDocument

MAX_HOPS = 5


async def survivor_of(store: DocumentStore, patient_id: str) -> str:
    """The patient a (possibly merged) id stands for now: follows `mergedInto` (a few hops)."""
    patients = Stored(store, PATIENTS, PatientDocument)
    current = patient_id
    for _ in range(MAX_HOPS):
        doc = await patients.read_or_none(current)
        if doc is None or not doc.merged_into:
            return current
        current = doc.merged_into
    return current


async def check_merge(
    store: DocumentStore, survivor_id: str, from_id: str
) -> tuple[PatientDocument, PatientDocument]:
    """Both records, if this merge may happen (or already did): the survivor is registered, the
    other is provisional and merged into nothing else."""
    if survivor_id == from_id:
        raise ValidationFailed([{"field": "body.from", "message": "must be another patient"}])
    patients = Stored(store, PATIENTS, PatientDocument)
    survivor = await patients.read_or_none(survivor_id)
    if survivor is None or survivor.merged_into:
        raise NotFound("No such patient.")
    if survivor.provisional:
        raise Conflict("A provisional record cannot take a merge: register the patient first.")
    provisional = await patients.read_or_none(from_id)
    if provisional is None:
        raise UnprocessableContent([{"field": "body.from", "message": "no such patient"}])
    if not provisional.provisional:
        raise Conflict("Only a provisional record (created by a bot escalation) can be merged.")
    if provisional.merged_into and provisional.merged_into != survivor_id:
        raise Conflict("That record was already merged into another patient.")
    return survivor, provisional


async def mark_merged(
    store: DocumentStore,
    clock: Clock,
    from_id: str,
    survivor_id: str,
    merged_by: str,
    pending: dict[str, list[str]],
) -> tuple[PatientDocument, bool]:
    """Point the provisional record at the survivor (before anything moves, so a crash leaves a
    merge a second run completes). Returns the record and whether this call changed it."""
    patients = Stored(store, PATIENTS, PatientDocument)

    async def step() -> tuple[PatientDocument, bool]:
        doc = await patients.read(from_id)
        if doc.merged_into == survivor_id:
            return doc, False
        now = stamp(clock.now())
        fresh = doc.changed(
            merged_into=survivor_id,
            merged_at=now,
            merged_by=merged_by,
            merge_pending={k: v for k, v in pending.items() if v} or None,
            updated_at=now,
        )
        return await patients.replace(fresh), True

    return await retry(step)


async def settle_merge(
    store: DocumentStore, clock: Clock, from_id: str, kind: str, moved: list[str]
) -> tuple[PatientDocument, bool]:
    """After a kind of reference was moved: it leaves `mergePending` for `mergeMoved` (with what
    this run moved). Returns the record and whether this call changed it (not when run again)."""
    patients = Stored(store, PATIENTS, PatientDocument)

    async def step() -> tuple[PatientDocument, bool]:
        doc = await patients.read(from_id)
        pending = dict(doc.merge_pending or {})
        done = dict(doc.merge_moved or {})
        listed = pending.pop(kind, [])
        merged = list(dict.fromkeys([*done.get(kind, []), *listed, *moved]))
        if not listed and merged == done.get(kind, []):
            return doc, False
        fresh = doc.changed(
            merge_pending=pending or None,
            merge_moved={**done, kind: merged},
            updated_at=stamp(clock.now()),
        )
        return await patients.replace(fresh), True

    return await retry(step)
