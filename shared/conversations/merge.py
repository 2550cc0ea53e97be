"""Moving a provisional patient's conversations to the patient it was merged into (record hygiene:
shared/workspace/merge.py runs the merge).

Each conversation on the list `patient-conversations:<from>` (and any the caller names: one
created before that list existed) is listed under the survivor first, then changed to name the
survivor with its `conversation.merged` event (ids only) through the outbox, ETag-checked, then
unlisted from the old list: the order every list writer keeps (shared/kernel/lists.py), so a crash
in between leaves an entry readers skip and a second run finishes the move. A conversation already
naming the survivor is only unlisted; a second run changes nothing.

What stays: the patient's own messages keep the author id they were written with (the provisional
id, which points to the survivor); the conversation's `patientId` is what every reader checks.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.conversations import store as conversations
from shared.conversations.model import ConversationDocument
from shared.kernel.catalog import LISTS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query
from shared.kernel.lists import ListEntry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp


async def listed_conversations(store: DocumentStore, patient_id: str) -> list[str]:
    """Every id on a patient's conversation list (in-partition pages of `lists`)."""
    entries = Stored(store, LISTS, ListEntry)
    ids: list[str] = []
    token: str | None = None
    while True:
        page = await entries.query(
            Query(), partition_key=conversations.patient_conversations_list(patient_id), continuation=token
        )
        ids += [item.ref for item in page.items]
        token = page.continuation
        if token is None:
            return ids


async def move_patient_conversations(
    store: DocumentStore, clock: Clock, from_id: str, to_id: str, known: Sequence[str] = ()
) -> list[str]:
    """The conversations that changed patient (none when run again)."""
    moved: list[str] = []
    for conversation_id in dict.fromkeys([*known, *await listed_conversations(store, from_id)]):
        doc = await conversations.read_or_none(store, conversation_id)
        if doc is not None and doc.patient_id == from_id:
            await conversations.list_for_patient(store, doc, to_id)

            def apply(current: ConversationDocument) -> ConversationDocument:
                if current.patient_id != from_id:
                    return current  # moved meanwhile (a concurrent merge): nothing to do
                at = stamp(clock.now())
                return current.changed(patient_id=to_id, updated_at=at).emit(
                    "conversation.merged", at, patientId=to_id, previousPatientId=from_id
                )

            changed = await conversations.change(store, conversation_id, apply)
            if changed.version > doc.version:
                moved.append(conversation_id)
        await conversations.unlist_for_patient(store, from_id, conversation_id)
    return moved
