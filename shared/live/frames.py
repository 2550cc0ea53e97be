"""What one `events` message pushes to whom: the groups, the frames and the group changes, worked
out from the envelope alone (and, for a message, the message as stored). Pure: no I/O here.

Groups (ids only, never PHI): `conv.<cid>.patient` (the patient's connections), `conv.<cid>.staff`
(the agent holding it), `agent.<agentId>` (that agent's own connections), `supervisors`.

| event | `conv.<cid>.patient` | `conv.<cid>.staff` | `agent.<agentId>` | `supervisors` |
|---|---|---|---|---|
| `conversation.message` | `message` if `visibility` is `patient` | `message` | | |
| `.waiting` | `status`, `position` | `status` | | `conversation` |
| `.offered` | `status` | `status` (the agent joins the group) | `offer` | `conversation` |
| `.accepted` | `status` | `status` (the agent joins the group) | `assigned` | `conversation` |
| `.declined`, `.expired` | `status` | `status` (the agent leaves the group) | `removed` | `conversation` |
| `.transferred` | | (the old agent leaves the group) | `removed` (the old agent) | |
| `.wrapup` | `status` | `status` | | `conversation` |
| `.closed` | `status` | `status` (the agent leaves the group) | `removed` | `conversation` |
| `.abandoned` | | | | |
| `agent.presence` | | | | `agent` (the dashboard's tile frame) |

Every frame carries `kind`, the `event` id (the envelope's: a client that sees an id twice drops
the second) and ids and stamps; a `message` frame carries the message as `GET …/messages` shows it
(the text is read from the message document, never from the event, and never logged). An internal
note goes to the staff group only. `position` frames (the patient's place in its queue) are worked
out by the feed after the push, for every conversation waiting in the queue that changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SUPERVISORS = "supervisors"

# The conversation's status once the event's write committed.
STATUS_AFTER = {
    "conversation.waiting": "waiting",
    "conversation.offered": "offered",
    "conversation.accepted": "active",
    "conversation.declined": "waiting",
    "conversation.expired": "waiting",
    "conversation.wrapup": "wrapup",
    "conversation.closed": "closed",
}
# Events after which the waiting line of a queue may have moved: its patients learn their place.
QUEUE_MOVES = frozenset(
    {
        "conversation.waiting",
        "conversation.offered",
        "conversation.accepted",
        "conversation.declined",
        "conversation.expired",
        "conversation.transferred",
        "conversation.closed",
    }
)
SUBJECTS = (
    "conversation.waiting",
    "conversation.offered",
    "conversation.accepted",
    "conversation.declined",
    "conversation.expired",
    "conversation.message",
    "conversation.transferred",
    "conversation.wrapup",
    "conversation.closed",
    "conversation.abandoned",
    "agent.presence",
)


def patient_group(conversation_id: str) -> str:
    return f"conv.{conversation_id}.patient"


def staff_group(conversation_id: str) -> str:
    return f"conv.{conversation_id}.staff"


def agent_group(agent_id: str) -> str:
    return f"agent.{agent_id}"


@dataclass(frozen=True)
class Push:
    group: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Membership:
    """Put `user_id`'s open connections in `group` (`join`) or take them out."""

    group: str
    user_id: str
    join: bool


@dataclass
class Plan:
    """In order: group changes before the frames of the same event (an agent who just accepted
    hears the conversation's next frames), removals after (the agent's last frame is `closed`)."""

    before: list[Membership] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)
    after: list[Membership] = field(default_factory=list)
    # The queue whose waiting patients should learn their place, if the line may have moved.
    queue_id: str | None = None


def conversation_plan(envelope: Mapping[str, Any], message: Mapping[str, Any] | None = None) -> Plan:
    """The plan of a `conversation.*` envelope; `message` is the message's view for
    `conversation.message` (None: it is gone, e.g. expired after its archive, and nothing goes)."""
    kind: str = envelope["type"]
    cid: str = envelope["aggregateId"]
    data: Mapping[str, Any] = envelope.get("data") or {}
    base = {"event": envelope["id"], "conversationId": cid}
    plan = Plan()
    agent_id = data.get("agentId")
    if kind == "conversation.message":
        if message is None:
            return plan
        frame = {"kind": "message", **base, "message": dict(message)}
        if message.get("visibility") == "patient" and data.get("visibility") == "patient":
            plan.pushes.append(Push(patient_group(cid), frame))
        plan.pushes.append(Push(staff_group(cid), frame))
        return plan
    status = STATUS_AFTER.get(kind)
    if status is not None:
        frame = {
            "kind": "status",
            **base,
            "status": status,
            "version": envelope["version"],
            "at": envelope["at"],
        }
        plan.pushes.append(Push(patient_group(cid), frame))
        plan.pushes.append(Push(staff_group(cid), frame))
        board = {
            "kind": "conversation",
            **base,
            "status": status,
            "queueId": data.get("queueId"),
            "agentId": agent_id if status in ("offered", "active", "wrapup") else None,
            "asOf": envelope["at"],
        }
        plan.pushes.append(Push(SUPERVISORS, board))
    if kind in ("conversation.offered", "conversation.accepted") and agent_id:
        plan.before.append(Membership(staff_group(cid), agent_id, join=True))
        own = {
            "kind": "offer" if kind == "conversation.offered" else "assigned",
            **base,
            "queueId": data.get("queueId"),
        }
        if kind == "conversation.offered":
            own |= {"offerSeq": data.get("offerSeq"), "expiresAt": data.get("expiresAt")}
        plan.pushes.append(Push(agent_group(agent_id), own))
    leaving = _leaving(kind, data)
    if leaving is not None:
        reason = kind.removeprefix("conversation.")
        plan.pushes.append(Push(agent_group(leaving), {"kind": "removed", **base, "reason": reason}))
        plan.after.append(Membership(staff_group(cid), leaving, join=False))
    if kind in QUEUE_MOVES:
        plan.queue_id = data.get("fromQueueId") if kind == "conversation.transferred" else data.get("queueId")
    return plan


def _leaving(kind: str, data: Mapping[str, Any]) -> str | None:
    """The agent who no longer holds the conversation after this event, if any."""
    if kind in ("conversation.declined", "conversation.expired", "conversation.closed"):
        return data.get("agentId") or None
    if kind == "conversation.transferred":
        return data.get("fromAgentId") or None
    return None


def presence_plan(envelope: Mapping[str, Any]) -> Plan:
    """`agent.presence` → the dashboard's agent tile frame (docs/ARCHITECTURE.md "Dashboard")."""
    data: Mapping[str, Any] = envelope.get("data") or {}
    frame = {
        "kind": "agent",
        "agentId": envelope["aggregateId"],
        "presence": data.get("status"),
        "load": data.get("load"),
        "capacity": data.get("capacity"),
        "asOf": data.get("at") or envelope["at"],
    }
    return Plan(pushes=[Push(SUPERVISORS, frame)])


def position_frame(conversation_id: str, queue_id: str, position: int, as_of: str) -> Push:
    return Push(
        patient_group(conversation_id),
        {
            "kind": "position",
            "conversationId": conversation_id,
            "queueId": queue_id,
            "position": position,
            "asOf": as_of,
        },
    )
