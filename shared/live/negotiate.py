"""Negotiate: a short-lived hub URL (the port's default, 5 minutes) whose token puts the
connection in exactly the groups its user may see, decided here and never by the client:

* a patient: `conv.<cid>.patient` of one of their own conversations (another's: 404, as REST);
* an agent: `agent.<agentId>` and `conv.<cid>.staff` of each conversation they hold (offered,
  active, wrap-up); one accepted later is added to their open connections by the feed;
* a supervisor: `supervisors` (the board's deltas).

A URL reconnects into its groups until it expires, so a client that reconnects negotiates again
and the groups are checked again.
"""

from __future__ import annotations

import hashlib

from shared.auth.principal import Principal
from shared.conversations.api import Messages
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.realtime import Realtime, check_user_id
from shared.live.frames import SUPERVISORS, agent_group, patient_group, staff_group
from shared.routing.api import RoutingDirectory, my_conversations


def hub_user(principal: Principal) -> str:
    """The hub's user id of a caller: the subject (an agent's is its agent id, which the feed
    names when it changes the agent's groups); a subject outside the hub's alphabet is hashed."""
    try:
        return check_user_id(principal.subject)
    except ValueError:
        return "u-" + hashlib.sha256(principal.subject.encode()).hexdigest()[:40]


async def patient_groups(
    store: DocumentStore, clock: Clock, principal: Principal, conversation_id: str, correlation_id: str | None
) -> list[str]:
    """Read (and audited) as `GET /api/me/conversations/{id}`: 404 unless it is the caller's."""
    doc = await Messages(store, clock).conversation(
        principal, conversation_id, side="patient", correlation_id=correlation_id
    )
    return [patient_group(doc.id)]


async def agent_groups(store: DocumentStore, principal: Principal) -> list[str]:
    """404 for a caller who is not a registered agent (as `GET /api/agents/me/conversations`)."""
    held = await my_conversations(store, RoutingDirectory(store), principal)
    return [agent_group(principal.subject), *(staff_group(doc.id) for doc in held)]


def supervisor_groups() -> list[str]:
    return [SUPERVISORS]


async def client_url(realtime: Realtime, principal: Principal, groups: list[str]) -> str:
    """Minted only once the groups are decided: a refused caller never reaches the hub."""
    return await realtime.client_url(hub_user(principal), groups)
