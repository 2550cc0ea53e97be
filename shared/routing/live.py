"""Routing's live state, as the supervisors' live tiles read it (`GET /api/supervisor/kpis/live`
and the tiles the KPI consumer pushes): per queue the waiting entries, the live conversations on
its board list and its members' seats; per agent the presence and load its seats carry.

Bounded reads, each a single partition: per queue one page of waiting entries (oldest first), one
page of its board list and one page of seats (`PAGE` each: a count past it is a lower bound), and
the queue's settings; the queue index names the queues. Agents come from the seats already read
(an agent who serves no queue has no seat and is not listed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.conversations.api import DEFAULT_QUEUE, conversations
from shared.kernel import lists
from shared.kernel.catalog import LISTS, ROUTING
from shared.kernel.documents import DocumentStore, Query, where
from shared.routing.directory import RoutingDirectory, by_priority

PAGE = 1000
MAX_QUEUES = 100


@dataclass
class SeatState:
    agent_id: str
    presence: str
    load: int
    capacity: int


@dataclass
class QueueState:
    queue_id: str
    name: str
    # Waiting conversation id → its `enqueuedAt`, oldest first.
    waiting: dict[str, str] = field(default_factory=dict)
    # Conversations on the queue's board list (waiting, offered, active or in wrap-up).
    live: set[str] = field(default_factory=set)
    seats: list[SeatState] = field(default_factory=list)


async def queue_ids(store: DocumentStore) -> list[str]:
    """The queues in priority order (the built-in `default` last), at most MAX_QUEUES."""
    index = await RoutingDirectory(store).queue_index()
    return [*by_priority(index), DEFAULT_QUEUE][:MAX_QUEUES]


async def queue_state(store: DocumentStore, queue_id: str) -> QueueState:
    routing = store.container(ROUTING)
    waiting, live, seats, settings = await asyncio.gather(
        routing.query(
            Query((where("type", "=", "waiting"),), order_by=(("enqueuedAt", False),)),
            partition_key=queue_id,
            max_items=PAGE,
        ),
        store.container(LISTS).query(
            Query(), partition_key=conversations.live_conversations_list(queue_id), max_items=PAGE
        ),
        routing.query(Query((where("type", "=", "seat"),)), partition_key=queue_id, max_items=PAGE),
        RoutingDirectory(store).queue_doc(queue_id),
    )
    return QueueState(
        queue_id=queue_id,
        name=settings.settings.name if settings is not None else queue_id,
        waiting={w["conversationId"]: w["enqueuedAt"] for w in waiting.items},
        live={lists.ListEntry.model_validate(e).ref for e in live.items},
        seats=[
            SeatState(s["agentId"], str(s["presence"]), int(s.get("used") or 0), int(s.get("capacity") or 0))
            for s in seats.items
        ],
    )


async def queue_states(store: DocumentStore) -> list[QueueState]:
    """Every queue's state (the `default` queue only when something waits or lives there)."""
    found = await asyncio.gather(*(queue_state(store, q) for q in await queue_ids(store)))
    return [s for s in found if s.queue_id != DEFAULT_QUEUE or s.waiting or s.live]
