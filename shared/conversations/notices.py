"""What a conversation's changes tell routing, through the `routing` queue (conversations never
import routing). A change that frees an agent's seat or takes a conversation out of its queue
sends one message with an id derived from the change, so a retried send is dropped by duplicate
detection, and routing's handler applies it idempotently (a release of capacity the agent no
longer holds, or of an entry already gone, changes nothing). The `events` topic takes this role
when the outbox comes.

Kinds (routing's handler reads them, shared/routing/handler.py):

* `conversation` with `returned: {agentId, expired}`: an offer came back (declined, or expired):
  release the agent's capacity (an expired offer's agent is asked for work a little later, so
  routing ranks them last for this conversation first), put the conversation back at its place
  in its queue's waiting order, route it. Id `route:<cid>:<decline|expire>:<offerSeq>`.
* `ended` with `queueId`, `agentId`: the conversation is over (closed after wrap-up, abandoned,
  ended, force closed): drop its waiting entry, release the agent's capacity. Id `ended:<cid>`
  (a conversation ends once).
* `wrapup-end`, scheduled at the end of the wrap-up block: routing asks conversations to close
  it (shared/conversations/lifecycle.py `end_wrapup`). Id `wrapup-end:<cid>`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.conversations.model import ConversationDocument
from shared.kernel.messages import OutgoingMessage
from shared.kernel.messaging import json_message

# An expired offer's agent is asked for work this much later (see the module docstring).
RETURN_GRACE = timedelta(seconds=5)


def _notice(kind: str, message_id: str, **fields: Any) -> OutgoingMessage:
    return json_message({"kind": kind, **fields}, message_id=message_id, subject=f"route-{kind}")


def returned(doc: ConversationDocument, agent_id: str, *, expired: bool) -> OutgoingMessage:
    why = "expire" if expired else "decline"
    return _notice(
        "conversation",
        f"route:{doc.id}:{why}:{doc.offer_seq or 0}",
        conversationId=doc.id,
        returned={"agentId": agent_id, "expired": expired},
    )


def ended(doc: ConversationDocument, *, queue_id: str | None, agent_id: str | None) -> OutgoingMessage:
    return _notice("ended", f"ended:{doc.id}", conversationId=doc.id, queueId=queue_id, agentId=agent_id)


def wrapup_end(conversation_id: str) -> OutgoingMessage:
    return _notice("wrapup-end", f"wrapup-end:{conversation_id}", conversationId=conversation_id)
