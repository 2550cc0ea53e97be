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
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.conversations.events import move_events
from shared.kernel.errors import Conflict
from shared.kernel.ids import Id
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
    stamp per transition, messages, and the history of moves. The transcript, summary and
    messages are PHI."""

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
    transcript: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
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
        "id",
        "conversationId",
        "version",
        "status",
        "history",
        "reason",
        "patientId",
        "botConversationId",
        "createdAt",
    }
)


class TranscriptLine(BaseModel):
    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, serialize_by_alias=True, defer_build=True
    )

    from_: Literal["bot", "patient", "agent", "system"] = Field(alias="from")
    text: str
    timestamp: InstantText | None = None
    agent_id: str | None = Field(None, alias="agentId")


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
    """A conversation as agents and supervisors read it (the transcript and summary are PHI and
    agent-only: never logged, never on the board)."""

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
    transcript: list[TranscriptLine] = Field(default_factory=list)
    messages: list[TranscriptLine] = Field(default_factory=list)
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
    transcript: list[dict[str, Any]],
    urgency: str,
    specialty: str | None,
    language: str,
    context: dict[str, str | int],
    channel: str | None,
    locale: str | None,
    body_format: str,
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
            "transcript": transcript,
            "messages": [],
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


class MessageRequest(_Request):
    text: Text = Field(min_length=1, max_length=4000)


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


class AbandonAnswer(BaseModel):
    """What the side that left learns (no transcript or agent-only summary: a patient may ask)."""

    model_config = ConfigDict(defer_build=True)

    id: str
    status: Status
    abandonedAt: InstantText | None = None
