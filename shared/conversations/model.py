"""A conversation's life: open (bot) → waiting → offered → active → wrapup → closed, with abandon,
decline, offer expiry, transfer and forced ends. One home for which move is legal and which stamp it sets; the
KPIs are computed from the stamps, so every transition writes one.

Conversations are stored as plain JSON documents (camelCase, as served); the services change them
only through `move`, which refuses illegal transitions with a 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.conversations.events import move_events
from shared.kernel.errors import Conflict
from shared.kernel.ids import ExternalId, Id
from shared.kernel.outbox import Aggregate
from shared.kernel.text import Line, Text
from shared.kernel.times import InstantText, stamp


class Urgency(StrEnum):
    """The bot's triage of how soon a human must answer (routing turns it into a priority)."""

    EMERGENCY = "emergency"
    URGENT = "urgent"
    ROUTINE = "routine"


class Status(StrEnum):
    OPEN = "open"
    WAITING = "waiting"
    OFFERED = "offered"
    ACTIVE = "active"
    WRAPUP = "wrapup"
    CLOSED = "closed"


LIVE = frozenset({Status.OPEN, Status.WAITING, Status.OFFERED, Status.ACTIVE, Status.WRAPUP})
# Statuses in which an agent holds capacity for the conversation.
HOLDS_CAPACITY = frozenset({Status.OFFERED, Status.ACTIVE, Status.WRAPUP})

# event -> (statuses it may start from, status it leads to, stamp it sets the first time)
TRANSITIONS: dict[str, tuple[frozenset[Status], Status, str | None]] = {
    "queue": (frozenset({Status.OPEN}), Status.WAITING, "escalatedAt"),
    "requeue": (frozenset({Status.WAITING, Status.OFFERED, Status.ACTIVE}), Status.WAITING, None),
    "offer": (frozenset({Status.WAITING}), Status.OFFERED, "offeredAt"),
    "accept": (frozenset({Status.OFFERED}), Status.ACTIVE, "acceptedAt"),
    "decline": (frozenset({Status.OFFERED}), Status.WAITING, None),
    # An offer not accepted in time: back to the queue, and no decline (routing ranks the agent
    # last for this conversation instead of excluding them).
    "expire": (frozenset({Status.OFFERED}), Status.WAITING, None),
    "wrapup": (frozenset({Status.ACTIVE}), Status.WRAPUP, "wrapupAt"),
    "close": (frozenset({Status.WRAPUP}), Status.CLOSED, "closedAt"),
    "abandon": (frozenset({Status.OPEN, Status.WAITING, Status.OFFERED}), Status.CLOSED, "abandonedAt"),
    "end": (frozenset({Status.OPEN, Status.WAITING, Status.OFFERED}), Status.CLOSED, "closedAt"),
    "force-close": (frozenset(LIVE), Status.CLOSED, "closedAt"),
}


class ConversationDocument(Aggregate):
    """A conversation as stored (`conversations`, partition `/conversationId`): the escalation's
    fixed fields, routing's (queue, agent, priority, skills, offers), the lifecycle's status and a
    stamp per transition, the last message's seq (messages are documents beside it,
    shared/conversations/documents.py), and the history of moves. The reason and summary are
    PHI."""

    PARTITION_FIELD: ClassVar[str] = "conversationId"

    type: Literal["conversation"] = "conversation"
    conversation_id: str
    status: Status
    bot_conversation_id: str
    patient_id: str
    patient_match: str | None = None
    queue_id: str | None = None
    agent_id: str | None = None
    priority: int = 1
    reason: str | None = None
    summary: str | None = None
    # The bot conversation's key (shared/conversations/documents.py `bot_key`) and which of its
    # human conversations this is (1, 2, …).
    bot_key: str | None = None
    generation: int = 1
    urgency: str | None = None
    specialty: str | None = None
    language: str | None = None
    context: dict[str, str | int] = {}
    channel: str | None = None
    locale: str | None = None
    format: str | None = None
    symptoms: list[str] | None = None
    skills: dict[str, int] = {}
    declines: dict[str, int] = {}
    offer_timeouts: dict[str, int] = {}
    transfers: int = 0
    offer_seq: int | None = None
    offer_expires_at: str | None = None
    wrapup_ends_at: str | None = None
    overflowed_from: str | None = None
    disposition: str | None = None
    end_reason: str | None = None
    # The queue it first entered and that queue's service-level threshold then (KPIs count service
    # level there), and the threshold of the queue it waits in now, as it was when it was queued.
    first_queue_id: str | None = None
    first_service_level_seconds: int | None = None
    service_level_seconds: int | None = None
    # Messages are documents in this partition (`msg:<seq>`); the last seq handed out.
    last_seq: int = 0
    # The bot conversation's earlier human conversation (closed) this one follows.
    previous_conversation_id: str | None = None
    # Where the bot hears about this conversation (shared/callbacks), as the escalation named it
    # and the policy accepted it; never served (it may carry the bot's token).
    callback_url: str | None = None
    created_at: str
    updated_at: str | None = None
    escalated_at: str | None = None
    queued_at: str | None = None
    offered_at: str | None = None
    accepted_at: str | None = None
    routed_at: str | None = None
    first_agent_response_at: str | None = None
    wrapup_at: str | None = None
    closed_at: str | None = None
    abandoned_at: str | None = None
    # When its transcript was archived and its messages were given their retention
    # (shared/conversations/transcripts.py); closed conversations only.
    archived_at: str | None = None
    history: list[dict[str, Any]] = []


Moved = TypeVar("Moved", ConversationDocument, dict[str, Any])


def move(
    doc: Moved,
    event: str,
    now: datetime,
    *,
    by: str | None = None,
    cause: str | None = None,
    detail: Mapping[str, Any] | None = None,
    **changes: Any,
) -> Moved:
    """A copy of `doc` after `event`, or Conflict (409) when the event is illegal in its status.
    The rules are written over the stored shape: `doc` is a conversation document (the copy keeps
    its ETag) or its stored JSON, and changes are named as stored (camelCase).

    `changes` are new values of the document's own fields (the queue, agent and disposition
    among them are also noted in the history entry). `by` (who moved it) and `cause` (why:
    `declined`, `timeout`, `transfer`, `overflow-arrival`…) describe the move itself and go into
    its history entry only: a move never touches a field it does not name, and never the fields
    the escalation fixed (`reason`, the bot's own words, among them).

    A conversation document's copy carries the move's events (shared/conversations/events.py;
    `detail` adds attributes to the first), which the outbox writes with it."""
    fixed = changes.keys() & _FIXED
    if fixed:
        raise TypeError(f"a move cannot change {sorted(fixed)}")
    sources, target, field = TRANSITIONS[event]
    typed = isinstance(doc, ConversationDocument)

    def current(name: str) -> Any:
        """A field a move reads, by stored name, from either shape (without dumping the document)."""
        if isinstance(doc, ConversationDocument):
            return getattr(doc, _STORED[name], None)
        return doc.get(name)

    status = Status(current("status"))
    if status not in sources:
        raise Conflict(f"cannot {event} a conversation that is {status}")
    at = stamp(now)
    delta: dict[str, Any] = {"status": target if typed else str(target)}
    if field and not current(field):
        delta[field] = at
    if not typed and event == "force-close" and status in (Status.OPEN, Status.WAITING, Status.OFFERED):
        delta["abandonedAt"] = current("abandonedAt")
    delta["updatedAt"] = at
    entry: dict[str, Any] = {"at": at, "event": event}
    entry.update({k: v for k, v in changes.items() if k in _NOTED})
    if by is not None:
        entry["by"] = by
    if cause is not None:
        entry["cause"] = cause
    delta["history"] = [*(current("history") or ()), entry][-200:]
    if event == "queue" and not current("firstQueueId"):
        delta["firstQueueId"] = changes.get("queueId")
        delta["firstServiceLevelSeconds"] = changes.get("serviceLevelSeconds")
    delta.update(changes)
    if isinstance(doc, ConversationDocument):
        # Unvalidated: every value is a stamp, an id, a count or a map of them, as stored.
        moved = doc.restated(**delta)
        extra = {"cause": cause} if event == "requeue" and cause else {}
        for type_, data in move_events(doc, moved, event, {**extra, **(detail or {})}):
            moved = moved.emit(type_, at, **data)
        return moved
    return {**doc, **delta}


# Stored name → field name of the conversation document (what `move` reads).
_STORED = {(f.alias or n): n for n, f in ConversationDocument.model_fields.items()}
# Document fields a move also notes in its history entry.
_NOTED = frozenset({"queueId", "agentId", "disposition"})
# Set once by the escalation (or by `move` itself): no move may overwrite them.
_FIXED = frozenset(
    {
        "botKey",
        "generation",
        "id",
        "conversationId",
        "version",
        "status",
        "history",
        "reason",
        "patientId",
        "botConversationId",
        "callbackUrl",
        "createdAt",
    }
)


# What a conversation's history records: its opening, then each transition.
HistoryEvent = Literal[
    "open",
    "queue",
    "requeue",
    "offer",
    "accept",
    "decline",
    "expire",
    "wrapup",
    "close",
    "abandon",
    "end",
    "force-close",
]


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)

    at: InstantText
    event: HistoryEvent


class ConversationView(BaseModel):
    """A conversation as agents and supervisors read it (the reason and summary are PHI and
    agent-only: never logged, never on the board). Its messages, the bot's transcript first, are
    read with `GET …/messages`."""

    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, serialize_by_alias=True, defer_build=True
    )

    id: str
    status: Status
    queue_id: str | None = Field(None, alias="queueId")
    agent_id: str | None = Field(None, alias="agentId")
    priority: int = 1
    patient_id: str = Field(alias="patientId")
    patient_match: str | None = Field(None, alias="patientMatch")
    bot_conversation_id: str | None = Field(None, alias="botConversationId")
    channel: str | None = None
    language: str | None = None
    urgency: Urgency | None = None
    specialty: str | None = None
    skills: dict[str, int] = Field(default_factory=dict)
    context: dict[str, str | int] = Field(default_factory=dict)
    reason: str | None = None
    summary: str | None = None
    last_seq: int = Field(0, alias="lastSeq", description="The seq of the last message (0: none).")
    previous_conversation_id: str | None = Field(
        None,
        alias="previousConversationId",
        description="The bot conversation's earlier human conversation, when this one followed it.",
    )
    disposition: str | None = None
    end_reason: str | None = Field(None, alias="endReason")
    transfers: int = 0
    declines: dict[str, int] = Field(default_factory=dict)
    offer_timeouts: dict[str, int] = Field(default_factory=dict, alias="offerTimeouts")
    created_at: InstantText = Field(alias="createdAt")
    escalated_at: InstantText | None = Field(None, alias="escalatedAt")
    offered_at: InstantText | None = Field(None, alias="offeredAt")
    accepted_at: InstantText | None = Field(None, alias="acceptedAt")
    first_agent_response_at: InstantText | None = Field(None, alias="firstAgentResponseAt")
    wrapup_at: InstantText | None = Field(None, alias="wrapupAt")
    closed_at: InstantText | None = Field(None, alias="closedAt")
    abandoned_at: InstantText | None = Field(None, alias="abandonedAt")
    offer_expires_at: InstantText | None = Field(None, alias="offerExpiresAt")
    updated_at: InstantText | None = Field(None, alias="updatedAt")
    archived_at: InstantText | None = Field(
        None,
        alias="archivedAt",
        description="When the closed conversation's transcript was archived (GET …/transcript); "
        "its messages expire PSC_MESSAGE_RETENTION_DAYS later.",
    )
    history: list[HistoryEntry] = Field(default_factory=list)


def new_conversation(
    *,
    conversation_id: str,
    bot_conversation_id: str,
    patient_id: str,
    patient_match: str,
    now: datetime,
    reason: str | None,
    summary: str | None,
    urgency: str,
    specialty: str | None,
    language: str,
    context: dict[str, str | int],
    channel: str | None,
    locale: str | None,
    body_format: str,
    bot_key: str | None = None,
    generation: int = 1,
    previous_conversation_id: str | None = None,
    callback_url: str | None = None,
) -> ConversationDocument:
    """The document the escalation webhook stores, in status `open` until routing queues it."""
    at = stamp(now)
    return ConversationDocument.model_validate(
        {
            "id": conversation_id,
            "conversationId": conversation_id,
            "type": "conversation",
            "status": str(Status.OPEN),
            "botConversationId": bot_conversation_id,
            "patientId": patient_id,
            "patientMatch": patient_match,
            "queueId": None,
            "agentId": None,
            "priority": 1,
            "reason": reason,
            "summary": summary,
            "botKey": bot_key,
            "generation": generation,
            "previousConversationId": previous_conversation_id,
            "callbackUrl": callback_url,
            "urgency": urgency,
            "specialty": specialty,
            "language": language,
            "context": context,
            "channel": channel,
            "locale": locale,
            "format": body_format,
            "skills": {},
            "declines": {},
            "transfers": 0,
            "createdAt": at,
            "updatedAt": at,
            "history": [{"at": at, "event": "open"}],
        }
    )


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


MessageText = Annotated[Text, Field(min_length=1, max_length=4000)]
SenderMessageId = Annotated[
    ExternalId, Field(description="Your own id for the message: sent twice, it is stored once.")
]


class MessageRequest(_Request):
    """A message from staff: to the patient (`patient`, the default) or a note between staff
    (`internal`), which the patient and the bot never see."""

    text: MessageText
    visibility: Literal["patient", "internal"] = "patient"
    id: SenderMessageId | None = None


class PatientMessageRequest(_Request):
    text: MessageText
    id: SenderMessageId | None = None


class BotMessageRequest(_Request):
    """The patient's message, relayed by the bot: `id` (the bot's own message id) is required."""

    text: MessageText
    id: SenderMessageId


class MessagesQuery(_Request):
    after: int | None = Field(None, ge=0, description="Messages after this seq (the last one you have).")
    max_items: int = Field(50, alias="maxItems", ge=1, le=500)


class MessageAuthor(BaseModel):
    model_config = ConfigDict(defer_build=True)

    role: Literal["patient", "bot", "agent", "supervisor", "system"]
    id: str | None = None
    name: str | None = None


class MessageView(BaseModel):
    """A message: `seq` 1, 2, … per conversation without gaps; `id` is the sender's own id when
    they gave one."""

    model_config = ConfigDict(defer_build=True, populate_by_name=True, serialize_by_alias=True)

    seq: int
    id: str
    author: MessageAuthor = Field(alias="from")
    visibility: Literal["patient", "internal"]
    text: str
    at: InstantText


class MessagePage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[MessageView]
    next: int | None = Field(description="Pass as `after` for the next page; null: no more now.")


class PatientConversationView(BaseModel):
    """A conversation as its patient sees it: where it stands, never staff's notes or summary."""

    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, serialize_by_alias=True, defer_build=True
    )

    id: str
    status: Status
    queue_id: str | None = Field(None, alias="queueId")
    last_seq: int = Field(0, alias="lastSeq")
    previous_conversation_id: str | None = Field(None, alias="previousConversationId")
    end_reason: str | None = Field(None, alias="endReason")
    created_at: InstantText = Field(alias="createdAt")
    escalated_at: InstantText | None = Field(None, alias="escalatedAt")
    accepted_at: InstantText | None = Field(None, alias="acceptedAt")
    wrapup_at: InstantText | None = Field(None, alias="wrapupAt")
    closed_at: InstantText | None = Field(None, alias="closedAt")
    abandoned_at: InstantText | None = Field(None, alias="abandonedAt")


class PatientConversationsQuery(_Request):
    max_items: int = Field(50, alias="maxItems", ge=1, le=100)
    continuation_token: str | None = Field(None, alias="continuationToken", max_length=2000)


class PatientConversationList(BaseModel):
    """A patient's conversations, newest first; a page may hold fewer than `maxItems`: only a
    missing `continuationToken` means the end."""

    model_config = ConfigDict(serialize_by_alias=True, defer_build=True)

    items: list[PatientConversationView]
    continuationToken: str | None = Field(None, description="Absent on the last page.")


class EndAnswer(BaseModel):
    """What the bot learns when the patient left."""

    model_config = ConfigDict(defer_build=True)

    conversationId: str
    status: Status
    endReason: str | None = None


class TransferRequest(_Request):
    """Give exactly one: a queue (the conversation waits there) or an agent (offered to them)."""

    queue_id: Id | None = Field(None, alias="queueId")
    agent_id: Id | None = Field(None, alias="agentId")


class CloseRequest(_Request):
    disposition: Line | None = Field(None, max_length=200)


class ForceCloseRequest(_Request):
    reason: Text | None = Field(None, max_length=200)


class AssignRequest(_Request):
    agent_id: Id = Field(alias="agentId")


class ConversationList(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, defer_build=True)

    items: list[ConversationView]


class ConversationDetail(ConversationView):
    """A conversation with its transcript, as staff read one (`GET /api/conversations/{id}`)."""

    transcript: MessagePage = Field(
        description="Its first messages in `seq` order (at most 50: the bot's transcript first, then "
        "the conversation, internal notes included), as `GET …/messages` answers them; when `next` "
        "is not null, `GET …/messages?after=<next>` goes on."
    )


class AbandonAnswer(BaseModel):
    """What the side that left learns (no transcript or agent-only summary: a patient may ask)."""

    model_config = ConfigDict(defer_build=True)

    id: str
    status: Status
    abandonedAt: InstantText | None = None
