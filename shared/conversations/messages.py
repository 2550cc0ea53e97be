"""Messages of a conversation (PRODUCT.md *Messages*): written by staff, by the patient in the
portal, by the bot relaying the patient; read by staff (everything) and the patient (what is
`patient`-visible).

A message is a document in its conversation's partition (shared/conversations/documents.py). A
write is one transaction: the message, its sender's key (when the sender gave an id), the
conversation's `lastSeq` + 1 (a replace conditional on its ETag) and the `conversation.message`
event. So `seq` runs 1, 2, … without gaps or duplicates however many writers race: a lost race
reads the conversation again and takes the next number (kernel.retry). The same sender's id
twice meets its key and answers the first message, unchanged.

Who may do what: the agent the conversation is assigned to and supervisors read everything and
write (`internal` notes too); an agent writes while the conversation is active or in wrap-up. The
patient reads and writes only their own conversations (another's id answers 404) and only
`patient` messages; the bot writes as the patient. Nobody writes to a closed conversation (409).
Reads and writes are audited.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from shared.audit.api import record_access
from shared.auth.principal import Principal, Role
from shared.conversations import store as conversations
from shared.conversations.documents import (
    MESSAGE_RANGE_END,
    Author,
    MessageDocument,
    MessageKey,
    Visibility,
    message_id,
    message_key_id,
    new_message,
)
from shared.conversations.events import seconds_between
from shared.conversations.model import ConversationDocument, Status
from shared.kernel.catalog import CONVERSATIONS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import Conflict, NotFound
from shared.kernel.outbox import ChildConflict
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Document, Stored
from shared.kernel.times import stamp

log = logging.getLogger(__name__)

Side = Literal["staff", "patient", "bot"]
STAFF_WRITES = frozenset({Status.ACTIVE, Status.WRAPUP})


def append(
    doc: ConversationDocument,
    *,
    author: Author,
    visibility: Visibility,
    text: str,
    at: str,
    client_id: str | None = None,
    sender: str | None = None,
) -> tuple[ConversationDocument, list[Document]]:
    """The conversation with its next message (and its `conversation.message` event), and the
    documents to create with it: the message, and the sender's key when `client_id` is given
    (`sender` names who sent it: the same id from another sender is another message)."""
    seq = doc.last_seq + 1
    message = new_message(
        doc.id, seq, author=author, visibility=visibility, text=text, at=at, client_id=client_id
    )
    children: list[Document] = [message]
    if client_id is not None:
        key = message_key_id(author.role, sender or author.id or "", client_id)
        children.append(MessageKey(id=key, conversation_id=doc.id, seq=seq))
    first_response = author.role == "agent" and visibility == "patient" and not doc.first_agent_response_at
    changed = doc.changed(
        last_seq=seq,
        updated_at=at,
        first_agent_response_at=doc.first_agent_response_at or (at if first_response else None),
    )
    event: dict[str, Any] = {
        "seq": seq,
        "visibility": visibility,
        "from": {"role": author.role, "id": author.id},
        "queueId": doc.queue_id,
        "agentId": doc.agent_id,
        "firstAgentResponse": first_response,
        "responseSeconds": seconds_between(doc.accepted_at, at) if first_response else None,
    }
    return changed.emit("conversation.message", at, **event), children


def transcript_messages(
    conversation_id: str, patient_id: str, transcript: list[dict[str, Any]]
) -> list[MessageDocument]:
    """The bot's transcript as the conversation's first messages (1 … n), patient-visible, at
    their own times. They are the escalation's content, not news: no event each."""
    return [
        new_message(
            conversation_id,
            seq,
            author=Author(role=line["from"], id=patient_id if line["from"] == "patient" else None),
            visibility="patient",
            text=line["text"],
            at=line["timestamp"],
        )
        for seq, line in enumerate(transcript, start=1)
    ]


class Messages:
    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._messages = Stored(store, CONVERSATIONS, MessageDocument)
        self._keys = Stored(store, CONVERSATIONS, MessageKey)

    # Who -----------------------------------------------------------------------------------------

    @staticmethod
    def _check_reader(doc: ConversationDocument, principal: Principal, side: Side) -> None:
        if side == "patient" and doc.patient_id != principal.patient_id:
            raise NotFound("no such conversation")  # another patient's: as if absent
        if side == "staff" and not (principal.has(Role.SUPERVISOR) or doc.agent_id == principal.subject):
            raise NotFound("no such conversation")

    @staticmethod
    def _author(doc: ConversationDocument, principal: Principal, side: Side) -> Author:
        if side != "staff":
            return Author(role="patient", id=doc.patient_id)
        if doc.agent_id == principal.subject and principal.has(Role.AGENT):
            return Author(role="agent", id=principal.subject, name=principal.name)
        return Author(role="supervisor", id=principal.subject, name=principal.name)

    @staticmethod
    def _check_writable(doc: ConversationDocument, author: Author) -> None:
        if doc.status == Status.CLOSED:
            raise Conflict("the conversation is closed")
        if author.role == "agent" and doc.status not in STAFF_WRITES:
            raise Conflict(f"the conversation is {doc.status}")

    async def _audit(
        self, principal: Principal, action: Any, doc: ConversationDocument, correlation_id: str | None
    ) -> None:
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action=action,
            resource=f"conversations/{doc.id}/messages",
            patient_id=doc.patient_id,
            correlation_id=correlation_id,
        )

    # Writing -------------------------------------------------------------------------------------

    async def post(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        side: Side,
        text: str,
        visibility: Visibility = "patient",
        client_id: str | None = None,
        sender: str | None = None,
        correlation_id: str | None,
    ) -> tuple[MessageDocument, bool]:
        """Write a message; (the message, True), or (the first message, False) for a sender's id
        seen before. `sender` keys the sender's ids (default: the author's id)."""
        if side != "staff":
            visibility = "patient"

        async def step() -> tuple[MessageDocument, bool, ConversationDocument]:
            doc = await conversations.read_or_none(self._store, conversation_id)
            if doc is None:
                raise NotFound("no such conversation")
            self._check_reader(doc, principal, side)
            author = self._author(doc, principal, side)
            try:
                self._check_writable(doc, author)
            except Conflict:
                # A retry of a message that was written before the conversation closed: its answer.
                replayed = await self._replayed(doc, author, client_id, sender)
                if replayed is None:
                    raise
                return replayed, False, doc
            at = stamp(self._clock.now())
            changed, children = append(
                doc,
                author=author,
                visibility=visibility,
                text=text,
                at=at,
                client_id=client_id,
                sender=sender,
            )
            try:
                await conversations.replace(self._store, changed, children)
            except ChildConflict as conflict:
                if not conflict.id.startswith("key:"):
                    raise Again() from None
                replayed = await self._replayed(doc, author, client_id, sender)
                if replayed is None:
                    raise Again() from None
                return replayed, False, doc
            message = children[0]
            assert isinstance(message, MessageDocument)
            return message, True, doc

        message, created, doc = await retry(
            step, give_up=lambda: Conflict("The conversation is busy; retry the message.")
        )
        await self._audit(principal, "create" if created else "read", doc, correlation_id)
        if created:
            log.info(
                "message written",
                extra={"conversation_id": conversation_id, "seq": message.seq, "outcome": message.visibility},
            )
        return message, created

    async def _replayed(
        self, doc: ConversationDocument, author: Author, client_id: str | None, sender: str | None
    ) -> MessageDocument | None:
        if client_id is None:
            return None
        key = await self._keys.read_or_none(
            message_key_id(author.role, sender or author.id or "", client_id), doc.id
        )
        if key is None:
            return None
        return await self._messages.read(message_id(key.seq), doc.id)

    # Reading -------------------------------------------------------------------------------------

    async def conversation(
        self, principal: Principal, conversation_id: str, *, side: Side, correlation_id: str | None
    ) -> ConversationDocument:
        """The conversation if `principal` may read it (404 otherwise), audited."""
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None:
            raise NotFound("no such conversation")
        self._check_reader(doc, principal, side)
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action="read",
            resource=f"conversations/{doc.id}",
            patient_id=doc.patient_id,
            correlation_id=correlation_id,
        )
        return doc

    async def mine(
        self, principal: Principal, *, max_items: int, token: str | None, correlation_id: str | None
    ) -> tuple[list[ConversationDocument], str | None]:
        """The signed-in patient's conversations, newest first, a page at a time (their own list
        only: the patient id comes from the token); audited as one `list` of that patient."""
        patient_id = principal.patient_id
        if not patient_id:
            raise NotFound("no such patient")
        docs, following = await conversations.patient_page(self._store, patient_id, token, max_items)
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action="list",
            resource="me/conversations",
            patient_id=patient_id,
            correlation_id=correlation_id,
        )
        return docs, following

    async def page(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        side: Side,
        after: int | None,
        max_items: int,
        correlation_id: str | None,
    ) -> dict[str, Any]:
        """`{"items", "next"}`: messages after `after` in seq order, one indexed range of the
        conversation's partition (the patient's: only `patient` ones)."""
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None:
            raise NotFound("no such conversation")
        self._check_reader(doc, principal, side)
        answer = await messages_after(self._store, doc.id, after=after, max_items=max_items, side=side)
        await self._audit(principal, "read", doc, correlation_id)
        return answer


# The first page of messages in a staff read of the conversation (`GET /api/conversations/{id}`):
# enough for the bot's transcript and the first exchanges; `next` says where `…/messages` goes on.
TRANSCRIPT_PAGE = 50


async def messages_after(
    store: DocumentStore, conversation_id: str, *, after: int | None, max_items: int, side: Side = "staff"
) -> dict[str, Any]:
    """`{"items", "next"}`: the messages after `after` in seq order, one indexed range of the
    conversation's partition (for the patient: only `patient` ones). Not audited: the caller
    checks who reads and audits."""
    conditions = [
        where("sortKey", ">", message_id(after or 0)),
        where("sortKey", "<", MESSAGE_RANGE_END),
    ]
    if side == "patient":
        conditions.append(where("visibility", "=", "patient"))
    page = await Stored(store, CONVERSATIONS, MessageDocument).query(
        Query(tuple(conditions), order_by=(("sortKey", False),)),
        partition_key=conversation_id,
        max_items=max_items,
    )
    items = list(page.items)
    return {
        "items": [m.view() for m in items],
        "next": items[-1].seq if items and page.continuation else None,
    }


async def patient_texts(store: DocumentStore, conversation_id: str, *, max_items: int = 20) -> list[str]:
    """The texts of the patient's latest messages (written by the patient, or by the bot for them
    in the transcript), newest first: one in-partition range of the conversation's partition. For
    a conversation's article suggestions; not audited (the caller audits its read)."""
    page = await Stored(store, CONVERSATIONS, MessageDocument).query(
        Query(
            (
                where("sortKey", ">", message_id(0)),
                where("sortKey", "<", MESSAGE_RANGE_END),
                where("visibility", "=", "patient"),
            ),
            order_by=(("sortKey", True),),
        ),
        partition_key=conversation_id,
        max_items=max_items,
    )
    return [m.text for m in page.items if m.author.role == "patient"]
