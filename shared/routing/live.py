"""Routing's live state, as the supervisors' live tiles read it (`GET /api/supervisor/kpis/live`
and the tiles the KPI consumer pushes): per queue the waiting entries, the live conversations on
its board list and its members' seats; per agent the presence and load its seats carry.

Bounded reads, each a single partition: per queue one page of waiting entries (oldest first), one
page of its board list and one page of seats (`PAGE` each: a count past it is a lower bound), and
the queue's settings; the queue index names the queues. Agents come from the seats already read
(an agent who serves no queue has no seat and is not listed).

`queue_counts` is what the KPI consumer reads for each event's tile: counts and the two oldest
waiting entries instead of the lists, so its cost per event stays flat however long the queue is
(reading every waiting entry per event made a backlog quadratic: at 1,000 waiting, each event
decoded 1,000 entries, 1,000 board entries and every seat).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.conversations.api import DEFAULT_QUEUE, conversations
from shared.kernel import lists
from shared.kernel.catalog import LISTS, ROUTING
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import NotFound
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


@dataclass
class QueueCounts:
    """A queue's tile numbers, and where one conversation stands in them (the event's own)."""

    queue_id: str
    name: str
    waiting: int
    # The two oldest waiting entries, (conversation id, `enqueuedAt`), oldest first: enough to know
    # the oldest once the event's own conversation is taken out.
    oldest: list[tuple[str, str]]
    live: int
    available: int
    conversation_waiting: bool
    conversation_live: bool


async def queue_counts(store: DocumentStore, queue_id: str, conversation_id: str) -> QueueCounts:
    """Seven single-partition reads, none of which grows with the queue: three counts, the two
    oldest waiting entries, the queue's settings and two point reads for `conversation_id`."""
    routing = store.container(ROUTING)
    board = store.container(LISTS)
    board_key = conversations.live_conversations_list(queue_id)

    async def exists(container: str, id: str, partition_key: str) -> bool:
        try:
            await store.container(container).read(id, partition_key)
        except NotFound:
            return False
        return True

    waiting, live, available = await asyncio.gather(
        routing.count(Query((where("type", "=", "waiting"),)), partition_key=queue_id),
        board.count(Query(), partition_key=board_key),
        routing.count(
            Query((where("type", "=", "seat"), where("presence", "=", "available"))), partition_key=queue_id
        ),
    )
    oldest, settings, is_waiting, is_live = await asyncio.gather(
        routing.query(
            Query((where("type", "=", "waiting"),), order_by=(("enqueuedAt", False),)),
            partition_key=queue_id,
            max_items=2,
        ),
        RoutingDirectory(store).queue_doc(queue_id),
        exists(ROUTING, f"wait:{conversation_id}", queue_id),
        exists(LISTS, conversation_id, board_key),
    )
    return QueueCounts(
        queue_id=queue_id,
        name=settings.settings.name if settings is not None else queue_id,
        waiting=waiting,
        oldest=[(w["conversationId"], w["enqueuedAt"]) for w in oldest.items],
        live=live,
        available=available,
        conversation_waiting=is_waiting,
        conversation_live=is_live,
    )
