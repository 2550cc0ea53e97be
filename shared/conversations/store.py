"""Conversation documents in the store, and the supervisor board's list of live conversations.

Every change is an ETag-checked replace through `change` (a lost race re-reads and applies the
change again). Routing and the escalation webhook reach these through `shared.conversations.api`.

The board's list `live-conversations:<queueId>` (one partition of `lists`, shared/kernel/lists.py)
holds the queue's live conversations in creation order. Writers list a conversation on a queue
*before* the change that puts it there and unlist it *after* the change that takes it away, so a
crash in between leaves an entry the board skips, never a live conversation off the board.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.kernel import lists
from shared.kernel.catalog import CONVERSATIONS
from shared.kernel.documents import Container, DocumentStore, Item, Page, Query
from shared.kernel.errors import NotFound
from shared.kernel.retry import retry

DEFAULT_QUEUE = "default"


def container(store: DocumentStore) -> Container:
    return store.container(CONVERSATIONS)


async def read(store: DocumentStore, conversation_id: str) -> Item:
    """The conversation; `NotFound` if there is none."""
    return await container(store).read(conversation_id, conversation_id)


async def read_or_none(store: DocumentStore, conversation_id: str) -> Item | None:
    try:
        return await read(store, conversation_id)
    except NotFound:
        return None


async def create(store: DocumentStore, doc: Item) -> Item:
    return await container(store).create(doc)


async def replace(store: DocumentStore, doc: Item, *, etag: str) -> Item:
    """Replace exactly the version read (`PreconditionFailed` otherwise)."""
    return await container(store).replace(doc, etag=etag)


async def delete(store: DocumentStore, conversation_id: str, *, etag: str) -> None:
    await container(store).delete(conversation_id, conversation_id, etag=etag)


async def change(store: DocumentStore, conversation_id: str, apply: Callable[[Item], Item]) -> Item:
    """Read-modify-write under the conversation's ETag: `apply(doc)` returns the new document (or
    `doc` itself for no change); a lost race reads again and applies again."""

    async def step() -> Item:
        try:
            doc = await read(store, conversation_id)
        except NotFound:
            raise NotFound("no such conversation") from None
        fresh = apply(doc)
        if fresh is doc:
            return doc
        return await replace(store, fresh, etag=doc["_etag"])

    return await retry(step)


async def scan(store: DocumentStore, query: Query, *, max_items: int) -> Page:
    """A cross-partition scan (the sweep timer's backstop only: never on a request path)."""
    return await container(store).query_cross_partition(query, max_items=max_items)


async def patient_of(store: DocumentStore, conversation_id: str) -> str | None:
    """The patient a conversation is about, or None when there is no such conversation (one point
    read: other capabilities check a reference with it, e.g. a booking made in a conversation)."""
    doc = await read_or_none(store, conversation_id)
    if doc is None:
        return None
    return str(doc.get("patientId")) if doc.get("patientId") else ""


# The board's list ------------------------------------------------------------------------------


def live_conversations_list(queue_id: str) -> str:
    return f"live-conversations:{queue_id}"


def live_entry(conversation: Item, queue_id: str) -> Item:
    cid = str(conversation["id"])
    return lists.entry(
        live_conversations_list(queue_id), cid, f"{conversation['createdAt']}|{cid}", queueId=queue_id
    )


async def list_live(store: DocumentStore, conversation: Item, queue_id: str) -> None:
    """On `queue_id`'s board list (before the change that puts it there)."""
    await lists.add(store, live_entry(conversation, queue_id))


async def unlist_live(store: DocumentStore, queue_id: str | None, conversation_id: str) -> None:
    """Off a queue's board list (after the change that takes it away)."""
    await lists.remove(store, live_conversations_list(queue_id or DEFAULT_QUEUE), conversation_id)
