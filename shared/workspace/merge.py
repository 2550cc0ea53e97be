"""Record hygiene: merging a provisional patient record into the registered patient it turns out
to be (`POST /api/patients/{patientId}/merge`).

The merge runs here rather than in patients because it moves references other capabilities own,
through their public modules, and the patient registry sits below scheduling and conversations in
the layers. In order, each step idempotent so a crash is finished by running the merge again and a
merge run twice changes nothing the second time:

1. the registry points the provisional record at the survivor (`mergedInto`, patients), naming
   what other capabilities still have to move (`mergePending`); from then on every reference
   still naming the provisional id resolves to the survivor (a sign-in link heals on first use);
2. its appointments move to the survivor (scheduling: listed under the survivor first, changed,
   unlisted from the provisional's list);
3. its audit trail is copied into the survivor's partition (audit: append-only, so copied with
   `mergedFrom`, never moved);
4. its conversations move to the survivor (conversations: the provisional's conversation list,
   and the escalation's own conversation `c-<hash>`, derived from the provisional id, in case it
   predates that list; each listed under the survivor, changed with `conversation.merged`, then
   unlisted), recorded first in `mergePending.conversations` and, once moved, in
   `mergeMoved.conversations` (the merge's answer, the same on every run).

Both records get an audit record of the merge (`merge`); a second run that finds it done audits a
`read` of the survivor only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.audit.api import copy_trail, record_access
from shared.auth.principal import Principal
from shared.conversations.api import conversations, listed_conversations, move_patient_conversations
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.ids import Id
from shared.kernel.times import InstantText
from shared.patients.api import check_merge, mark_merged, settle_merge
from shared.scheduling.api import move_patient_appointments

PROVISIONAL_PREFIX = "prov-"


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    from_: Id = Field(alias="from", description="The provisional record to merge into this patient.")


class MergeResult(BaseModel):
    patientId: str
    mergedFrom: str = Field(description="The provisional record merged into this patient.")
    mergedAt: InstantText
    mergedBy: str
    alreadyMerged: bool = Field(description="True when this call found the merge done and changed nothing.")
    conversations: list[str] = Field(
        default_factory=list, description="The provisional record's conversations, now this patient's."
    )
    pendingConversations: list[str] = Field(
        description="Conversations still to move (a merge interrupted midway: merge again)."
    )


async def _audit(
    store: DocumentStore,
    clock: Clock,
    actor: Principal,
    action: str,
    survivor_id: str,
    patient_id: str,
    correlation_id: str | None,
) -> None:
    await record_access(
        store,
        clock,
        actor=actor,
        action=action,  # type: ignore[arg-type]
        resource=f"patients/{survivor_id}/merge",
        patient_id=patient_id,
        correlation_id=correlation_id,
    )


def escalation_conversation(provisional_id: str) -> str | None:
    """The conversation whose escalation created a provisional record (same hash, other prefix)."""
    if not provisional_id.startswith(PROVISIONAL_PREFIX):
        return None
    return "c-" + provisional_id.removeprefix(PROVISIONAL_PREFIX)


async def merge(
    store: DocumentStore,
    clock: Clock,
    actor: Principal,
    survivor_id: str,
    from_id: str,
    correlation_id: str | None,
) -> MergeResult:
    _, provisional = await check_merge(store, survivor_id, from_id)
    already = provisional.merged_into == survivor_id
    # What still names the provisional record: its conversation list, and the escalation's own
    # conversation (derived from the provisional id), in case it was written before that list.
    candidates = await listed_conversations(store, from_id)
    conversation_id = escalation_conversation(from_id)
    if conversation_id is not None and conversation_id not in candidates:
        candidates.append(conversation_id)
    pending: list[str] = []
    for cid in candidates:
        conversation = await conversations.read_or_none(store, cid)
        if conversation is not None and conversation.patient_id == from_id:
            pending.append(cid)
    marked, changed = await mark_merged(
        store, clock, from_id, survivor_id, actor.subject, {"conversations": pending}
    )
    moved = await move_patient_appointments(store, clock, from_id, survivor_id)
    known = list(dict.fromkeys([*(marked.merge_pending or {}).get("conversations", []), *pending]))
    moved_conversations = await move_patient_conversations(store, clock, from_id, survivor_id, known)
    settled, changed_settled = await settle_merge(store, clock, from_id, "conversations", moved_conversations)
    changed = changed or changed_settled
    if changed or moved or moved_conversations:
        # Before the trail is copied, so the copy carries this record too and a second run finds
        # nothing left to copy.
        await _audit(store, clock, actor, "merge", survivor_id, from_id, correlation_id)
    copied = await copy_trail(store, from_id, survivor_id)
    did_something = changed or moved > 0 or bool(moved_conversations) or copied > 0
    await _audit(
        store, clock, actor, "merge" if did_something else "read", survivor_id, survivor_id, correlation_id
    )
    return MergeResult(
        patientId=survivor_id,
        mergedFrom=from_id,
        mergedAt=marked.merged_at or "",
        mergedBy=marked.merged_by or actor.subject,
        alreadyMerged=already and not did_something,
        conversations=list((settled.merge_moved or {}).get("conversations", [])),
        pendingConversations=list((settled.merge_pending or {}).get("conversations", [])),
    )
