"""Conversation documents in the store, and the supervisor board's list of live conversations.

Every change is an ETag-checked replace through `change` (a lost race re-reads and applies the
change again), written with its events through the outbox (shared/kernel/outbox.py). Routing and
the escalation webhook reach these through `shared.conversations.api`.

The board's list `live-conversations:<queueId>` (one partition of `lists`, shared/kernel/lists.py)
holds the queue's live conversations in creation order. Writers list a conversation on a queue
*before* the change that puts it there and unlist it *after* the change that takes it away, so a
crash in between leaves an entry the board skips, never a live conversation off the board.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.conversations.model import ConversationDocument
from shared.kernel import lists
from shared.kernel.catalog import CONVERSATIONS, LISTS
from shared.kernel.documents import DocumentStore, Query
from shared.kernel.errors import NotFound
from shared.kernel.outbox import Aggregates
from shared.kernel.retry import retry
from shared.kernel.stored import Document, Stored, TypedPage

DEFAULT_QUEUE = "default"


def documents(store: DocumentStore) -> Aggregates[ConversationDocument]:
    return Aggregates(store, CONVERSATIONS, ConversationDocument)


async def read(store: DocumentStore, conversation_id: str) -> ConversationDocument:
    """The conversation; `NotFound` if there is none."""
    return await documents(store).read(conversation_id)


async def read_or_none(store: DocumentStore, conversation_id: str) -> ConversationDocument | None:
    return await documents(store).read_or_none(conversation_id)


async def create(
    store: DocumentStore, doc: ConversationDocument, children: Sequence[Document] = ()
) -> ConversationDocument:
    """Create the conversation with its events and `children` (its first messages): one batch."""
    return await documents(store).create(doc, children=children)


async def replace(
    store: DocumentStore,
    doc: ConversationDocument,
    children: Sequence[Document] = (),
    replaced: Sequence[Document] = (),
) -> ConversationDocument:
    """Replace exactly the version `doc` was read as (`PreconditionFailed` otherwise), with its
    events, `children` (created: a message and its key) and `replaced` (other documents of its
    partition, under the ETags they were read with: a consult) in the same batch."""
    return await documents(store).replace(doc, children=children, replaced=replaced)


async def delete(store: DocumentStore, doc: ConversationDocument) -> None:
    """Delete exactly the version `doc` was read or written as."""
    await documents(store).delete(doc.id, etag=doc.etag)


async def change(
    store: DocumentStore,
    conversation_id: str,
    apply: Callable[[ConversationDocument], ConversationDocument],
) -> ConversationDocument:
    """Read-modify-write under the conversation's ETag: `apply(doc)` returns the new document (or
    `doc` itself for no change); a lost race reads again and applies again."""

    async def step() -> ConversationDocument:
        doc = await read_or_none(store, conversation_id)
        if doc is None:
            raise NotFound("no such conversation")
        fresh = apply(doc)
        if fresh is doc:
            return doc
        return await replace(store, fresh)

    return await retry(step)


async def scan(store: DocumentStore, query: Query, *, max_items: int) -> TypedPage[ConversationDocument]:
    """A cross-partition scan (the sweep timer's backstop only: never on a request path)."""
    return await documents(store).query_cross_partition(query, max_items=max_items)


async def patient_of(store: DocumentStore, conversation_id: str) -> str | None:
    """The patient a conversation is about, or None when there is no such conversation (one point
    read: other capabilities check a reference with it, e.g. a booking made in a conversation)."""
    doc = await read_or_none(store, conversation_id)
    if doc is None:
        return None
    return doc.patient_id or ""


# The board's list ------------------------------------------------------------------------------


def live_conversations_list(queue_id: str) -> str:
    return f"live-conversations:{queue_id}"


def live_entry(conversation: ConversationDocument, queue_id: str) -> lists.ListEntry:
    cid = conversation.id
    return lists.entry(
        live_conversations_list(queue_id), cid, f"{conversation.created_at}|{cid}", queue_id=queue_id
    )


async def list_live(store: DocumentStore, conversation: ConversationDocument, queue_id: str) -> None:
    """On `queue_id`'s board list (before the change that puts it there)."""
    await lists.add(store, live_entry(conversation, queue_id))


async def unlist_live(store: DocumentStore, queue_id: str | None, conversation_id: str) -> None:
    """Off a queue's board list (after the change that takes it away)."""
    await lists.remove(store, live_conversations_list(queue_id or DEFAULT_QUEUE), conversation_id)


# A patient's conversations ----------------------------------------------------------------------
# `patient-conversations:<patientId>`, newest last by `<createdAt>|<id>`: the unified patient view
# and `GET /api/me/conversations` (newest first, paged) read a patient's conversations from one
# partition of `lists` (conversations are partitioned by their own id). A new conversation is
# listed by the `patient-conversations` consumer of its first `conversation.waiting` event
# (`list_from_event`), not by the webhook, which keeps its round trips; a merge lists under the
# survivor before it moves a conversation and unlists after.
# A reader keeps an entry only while the conversation still names the patient.


def patient_conversations_list(patient_id: str) -> str:
    return f"patient-conversations:{patient_id}"


def patient_entry(conversation: ConversationDocument, patient_id: str) -> lists.ListEntry:
    cid = conversation.id
    return lists.entry(patient_conversations_list(patient_id), cid, f"{conversation.created_at}|{cid}")


async def list_for_patient(store: DocumentStore, conversation: ConversationDocument, patient_id: str) -> None:
    """On `patient_id`'s list (before the change that makes the conversation theirs)."""
    await lists.add(store, patient_entry(conversation, patient_id))


async def unlist_for_patient(store: DocumentStore, patient_id: str, conversation_id: str) -> None:
    """Off a patient's list (after the change that takes the conversation away)."""
    await lists.remove(store, patient_conversations_list(patient_id), conversation_id)


async def patient_conversation_ids(store: DocumentStore, patient_id: str, *, max_items: int) -> list[str]:
    """The ids on a patient's list, newest first (one in-partition query of `lists`; entries
    whose conversation left the patient are still here: check each read)."""
    page = await Stored(store, LISTS, lists.ListEntry).query(
        Query(order_by=(("sortKey", True),)),
        partition_key=patient_conversations_list(patient_id),
        max_items=max_items,
    )
    return [item.ref for item in page.items]


async def for_patient(store: DocumentStore, patient_id: str, *, max_items: int) -> list[ConversationDocument]:
    """A patient's newest conversations (up to `max_items`): the list's newest entries, each read
    by id (point reads, in parallel) and kept only if it still names the patient."""
    ids = await patient_conversation_ids(store, patient_id, max_items=max_items)
    docs = await asyncio.gather(*(read_or_none(store, cid) for cid in ids))
    return [doc for doc in docs if doc is not None and doc.patient_id == patient_id]


async def patient_page(
    store: DocumentStore, patient_id: str, token: str | None, max_items: int
) -> tuple[list[ConversationDocument], str | None]:
    """One page of a patient's conversations, newest first, and the token of the next (None at the
    end): one partition of `lists` walked by descending `sortKey`, each entry's conversation read
    by id and kept only while it names the patient (a merge may have moved it). A token fits only
    this patient's list: another's, or a malformed one, is a 400."""
    list_key = patient_conversations_list(patient_id)

    async def load(entry: lists.ListEntry, _segment: lists.Segment) -> ConversationDocument | None:
        doc = await read_or_none(store, entry.ref)
        return doc if doc is not None and doc.patient_id == patient_id else None

    return await lists.read_page(
        store,
        f"{list_key}|newest",
        [lists.Segment("0", list_key, descending=True)],
        token,
        max_items,
        load,
    )


async def list_from_event(store: DocumentStore, envelope: Mapping[str, Any]) -> bool:
    """The `patient-conversations` consumer: a conversation's first `conversation.waiting` lists it
    under the patient it names now (read by id: a merge may have moved it since). Any other event,
    or a conversation gone, changes nothing; a redelivery finds the entry and writes nothing. True
    if listed."""
    if envelope.get("type") != "conversation.waiting":
        return False
    data = envelope.get("data")
    if isinstance(data, Mapping) and data.get("first") is False:
        return False
    conversation_id = envelope.get("aggregateId")
    if not isinstance(conversation_id, str) or not conversation_id:
        return False
    doc = await read_or_none(store, conversation_id)
    if doc is None or not doc.patient_id:
        return False
    entry = patient_entry(doc, doc.patient_id)
    if await Stored(store, LISTS, lists.ListEntry).read_or_none(entry.id, entry.list) is not None:
        return True  # a redelivery: listed already, nothing written
    await lists.add(store, entry)
    return True
