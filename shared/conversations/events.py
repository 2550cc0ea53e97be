"""What each move of a conversation tells the rest of the product: the `conversation.*` events the
outbox writes with the change (shared/kernel/outbox.py), one home for their attributes.

Events carry ids, stamps, counts and the attributes a consumer needs to stay correct on replay,
as they were at the time (docs/KPIS.md: the queue, the agent, the queue's service-level threshold,
the waits), never PHI (no reason, summary, transcript, message text or disposition).

| move | events |
|---|---|
| queue (the escalation) | `conversation.waiting` (`first: true`) |
| requeue (transfer, overflow) | `conversation.transferred`, `conversation.waiting` (`first: false`) |
| offer | `conversation.offered` |
| accept | `conversation.accepted` |
| decline | `conversation.declined` |
| expire (an offer not accepted in time) | `conversation.expired` |
| wrapup (the agent closed, or the patient left an active one) | `conversation.wrapup` |
| close (end of wrap-up), end (overflow), force-close | `conversation.closed` |
| abandon (the patient left while waiting or offered) | `conversation.abandoned`, `conversation.closed` |
| a message | `conversation.message` (shared/conversations/messages.py) |
| its patient merged (conversations/merge.py) | `conversation.merged` (`patientId`, `previousPatientId`) |
| a Teams consult's change (shared/consults/) | `consult.sent`, `consult.answered`, `consult.expired` |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.kernel.times import parse_stamp

if TYPE_CHECKING:
    from shared.conversations.model import ConversationDocument

Data = dict[str, Any]


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (parse_stamp(end) - parse_stamp(start)).total_seconds()


def _waiting(after: ConversationDocument, *, first: bool) -> Data:
    return {
        "queueId": after.queue_id,
        "queuedAt": after.queued_at,
        "first": first,
        "escalatedAt": after.escalated_at,
        "serviceLevelSeconds": after.service_level_seconds,
        "priority": after.priority,
        "firstQueueId": after.first_queue_id,
    }


def _closed(before: ConversationDocument, after: ConversationDocument) -> Data:
    handled = after.accepted_at is not None
    ended = after.closed_at or after.abandoned_at
    active = seconds_between(after.accepted_at, after.wrapup_at or ended) if handled else None
    wrapup = (
        seconds_between(after.wrapup_at, ended) if handled and after.wrapup_at else (0.0 if handled else None)
    )
    return {
        "queueId": before.queue_id,
        "agentId": before.agent_id,
        "handled": handled,
        "activeSeconds": active,
        "wrapupSeconds": wrapup,
        "endReason": after.end_reason or "completed",
        "closedAt": ended,
    }


def move_events(
    before: ConversationDocument, after: ConversationDocument, event: str, detail: Mapping[str, Any]
) -> list[tuple[str, Data]]:
    """The events of one move, in order (`detail`: what the caller adds to the first one)."""
    found: list[tuple[str, Data]]
    if event == "queue":
        found = [("conversation.waiting", _waiting(after, first=True))]
    elif event == "requeue":
        transferred = {
            "fromQueueId": before.queue_id,
            "toQueueId": after.queue_id,
            "fromAgentId": before.agent_id,
            "toAgentId": None,
            "engaged": before.accepted_at is not None,
            "status": str(before.status),
        }
        found = [
            ("conversation.transferred", transferred),
            ("conversation.waiting", _waiting(after, first=False)),
        ]
    elif event == "offer":
        found = [
            (
                "conversation.offered",
                {
                    "agentId": after.agent_id,
                    "queueId": after.queue_id,
                    "offerSeq": after.offer_seq,
                    "expiresAt": after.offer_expires_at,
                },
            )
        ]
    elif event == "accept":
        first = before.accepted_at is None
        found = [
            (
                "conversation.accepted",
                {
                    "agentId": after.agent_id,
                    "queueId": after.queue_id,
                    "first": first,
                    "queuedAt": after.queued_at,
                    "acceptedAt": after.updated_at,
                    "waitSeconds": seconds_between(after.queued_at, after.updated_at),
                    "firstWaitSeconds": seconds_between(after.escalated_at, after.accepted_at),
                    "serviceLevelSeconds": after.first_service_level_seconds,
                    "firstQueueId": after.first_queue_id,
                },
            )
        ]
    elif event in ("decline", "expire"):
        agent_id = before.agent_id
        counts = after.declines if event == "decline" else after.offer_timeouts
        found = [
            (
                "conversation.declined" if event == "decline" else "conversation.expired",
                {
                    "agentId": agent_id,
                    "queueId": after.queue_id,
                    "offerSeq": before.offer_seq,
                    "count": (counts or {}).get(agent_id or "", 0),
                },
            )
        ]
    elif event == "wrapup":
        found = [
            (
                "conversation.wrapup",
                {
                    "agentId": after.agent_id,
                    "queueId": after.queue_id,
                    "wrapupEndsAt": after.wrapup_ends_at,
                    "endReason": after.end_reason,
                },
            )
        ]
    elif event == "abandon":
        abandoned = {
            "queueId": before.queue_id,
            "agentId": before.agent_id,
            "waitSeconds": seconds_between(after.escalated_at, after.abandoned_at),
            "serviceLevelSeconds": after.first_service_level_seconds,
            "firstQueueId": after.first_queue_id,
            "abandonedAt": after.abandoned_at,
        }
        found = [("conversation.abandoned", abandoned), ("conversation.closed", _closed(before, after))]
    elif event in ("close", "end", "force-close"):
        found = [("conversation.closed", _closed(before, after))]
    else:
        raise ValueError(f"no events for move {event!r}")
    if detail:
        found[0][1].update(detail)
    return found
