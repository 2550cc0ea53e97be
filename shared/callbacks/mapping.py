"""Which `events` become which bot callbacks (PRODUCT.md "Bot callbacks"), pure.

* `conversation.waiting`, and later looks while it waits → `queue.position` (`position`,
  `estimatedWaitSeconds`: null, `outOfHours`);
* `conversation.accepted` → `agent.joined` (`agent.name`: the agent's display name);
* `conversation.message`, patient-visible and written by staff or the system (never the
  patient's own, never the bot's) → `message` (`seq`, `text`, `from`: `role`, `name`);
* `conversation.transferred` → `conversation.transferred`;
* `conversation.closed` → `conversation.closed` (`endReason`).

Every callback's data also carries `conversationId` and `botConversationId`.

An internal note never becomes a callback: the event says `visibility: internal` and is dropped
here, and the message document read for the text is checked again (`message_data`). Event and
message ids only ever reach logs; texts and names only the bot.

`webhook-id`: the event id `<conversation id>:<version>.<n>` with its one `.` made `-` (Standard
Webhooks signs `{id}.{timestamp}.{body}`: an id holding a dot could blur the fields, so the
sender refuses one). Conversation ids hold no `:` or `.`, so the mapping is one-to-one, and a
redelivered event makes the same id (bots dedupe on it). A later look at the queue position is
`<conversation id>:position-<k>`, k counting the looks that told the bot something.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.kernel.callbacks import CallbackType
from shared.kernel.times import parse_stamp

WAITING = "conversation.waiting"
ACCEPTED = "conversation.accepted"
MESSAGE = "conversation.message"
TRANSFERRED = "conversation.transferred"
CLOSED = "conversation.closed"
EVENT_TYPES = (WAITING, ACCEPTED, MESSAGE, TRANSFERRED, CLOSED)
# A wake-up the consumer schedules for itself (retries, the next look at the position): sent to
# the topic with this subject, which only the callbacks subscription's filter lets in.
WAKE = "callbacks.wake"
SUBJECTS = (*EVENT_TYPES, WAKE)

# The bot hears of a changed position at most this often (and it is looked at this often).
POSITION_EVERY = timedelta(seconds=15)
# Authors whose patient-visible messages the bot relays (never the patient's own or the bot's).
RELAYED_AUTHORS = frozenset({"agent", "supervisor", "system"})

Need = Literal["position", "agent", "message", "transferred", "closed"]


@dataclass(frozen=True)
class Envelope:
    """An `events` message body (shared/kernel/outbox.py `EventDocument.envelope`)."""

    id: str
    type: str
    aggregate_id: str
    version: int
    n: int
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Envelope:
        """ValueError for a body that is not an event envelope."""
        try:
            event_id = str(body["id"])
            aggregate_id = str(body["aggregateId"])
            version = int(body["version"])
            prefix, _, number = event_id.rpartition(":")
            stated_version, _, n = number.partition(".")
            if prefix != aggregate_id or int(stated_version) != version:
                raise ValueError("the event id does not name its aggregate and version")
            data = body.get("data") or {}
            if not isinstance(data, Mapping):
                raise ValueError("data must be an object")
            return cls(
                event_id, str(body["type"]), aggregate_id, version, int(n), parse_stamp(str(body["at"])), data
            )
        except (KeyError, TypeError) as missing:
            raise ValueError(f"not an event envelope ({type(missing).__name__})") from None

    @property
    def order(self) -> tuple[int, int]:
        return (self.version, self.n)


def webhook_id(event_id: str) -> str:
    """The callback's `webhook-id` for an event id: dot-free, one-to-one."""
    return event_id.replace(".", "-")


def position_webhook_id(conversation_id: str, look: int) -> str:
    return f"{conversation_id}:position-{look}"


def need_of(envelope: Envelope) -> Need | None:
    """What callback an event may make, before anything is read; None: none."""
    if envelope.type == WAITING:
        return "position"
    if envelope.type == ACCEPTED:
        return "agent"
    if envelope.type == MESSAGE:
        author = envelope.data.get("from") or {}
        if envelope.data.get("visibility") == "patient" and author.get("role") in RELAYED_AUTHORS:
            return "message"
        return None
    if envelope.type == TRANSFERRED:
        return "transferred"
    if envelope.type == CLOSED:
        return "closed"
    return None


def callback_type_of(need: Need) -> CallbackType:
    return {
        "position": "queue.position",
        "agent": "agent.joined",
        "message": "message",
        "transferred": "conversation.transferred",
        "closed": "conversation.closed",
    }[need]  # type: ignore[return-value]


def message_data(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `message` callback's data from the stored message (its view: seq, from, visibility,
    text), or None when the bot must not see it: checked on the document itself, whatever the
    event said."""
    author = message.get("from") or {}
    if message.get("visibility") != "patient" or author.get("role") not in RELAYED_AUTHORS:
        return None
    sender = {"role": author["role"]}
    if author.get("name"):
        sender["name"] = author["name"]
    return {"seq": message["seq"], "text": message["text"], "from": sender}


def position_data(position: int, out_of_hours: bool) -> dict[str, Any]:
    # No estimate yet: PRODUCT.md allows null, and a wrong estimate is worse than none.
    return {"position": position, "estimatedWaitSeconds": None, "outOfHours": out_of_hours}


PositionDecision = Literal["tell", "later", "same"]


def position_decision(
    told: tuple[int, bool] | None, told_at: datetime | None, now_standing: tuple[int, bool], now: datetime
) -> PositionDecision:
    """Tell the bot its place when it changed and it was last told at least 15 s ago; a change
    sooner waits for the next look (`later`); `same`: nothing to tell."""
    if told == now_standing:
        return "same"
    if told_at is not None and now - told_at < POSITION_EVERY:
        return "later"
    return "tell"
