"""Where a waiting conversation stands, for whoever tells the patient (bot callbacks): its place
in its queue's serving order and whether the queue is closed by its hours, and an agent's display
name.

The place is counted, not listed: the waiting entries ahead of it are a `sortKey` range of the
queue's partition of `routing` (`w|<999-priority>|<enqueued at>|<id>`, shared/routing/engine.py),
and `Container.count` asks Cosmos DB for `SELECT VALUE COUNT(1)` over that range, which the index
answers without loading an entry. One single-partition query per look, whatever the queue's length;
no cross-partition query. The conversation's own key is computed from the conversation (priority,
time queued, id), so the count is right before routing has written its entry and after an offer
has taken it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.conversations.api import DEFAULT_QUEUE, ConversationDocument, Status
from shared.kernel.catalog import ROUTING
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import NotFound
from shared.routing.directory import RoutingDirectory
from shared.routing.engine import is_open
from shared.routing.seats import waiting_entry

WAITING_START = "w|"


@dataclass(frozen=True)
class Standing:
    """A waiting conversation's place (1: next to be served) and its queue's hours."""

    position: int
    out_of_hours: bool


async def queue_standing(store: DocumentStore, clock: Clock, doc: ConversationDocument) -> Standing | None:
    """Where `doc` stands in its queue, or None when it is not waiting."""
    if doc.status != Status.WAITING:
        return None
    queue_id = doc.queue_id or DEFAULT_QUEUE
    key = waiting_entry(doc, doc.queued_at or doc.created_at, 1).sort_key
    ahead = await store.container(ROUTING).count(
        Query((where("sortKey", ">=", WAITING_START), where("sortKey", "<", key))), partition_key=queue_id
    )
    settings = await RoutingDirectory(store).queue(queue_id)
    return Standing(position=ahead + 1, out_of_hours=not is_open(settings.operating_hours, clock.now()))


async def agent_display_name(store: DocumentStore, agent_id: str) -> str | None:
    """The name administrators gave the agent (None for an agent no longer registered)."""
    try:
        agent = await RoutingDirectory(store).agent_doc(agent_id)
    except NotFound:
        return None
    return agent.profile.name
