"""The supervisors' live view: `GET /api/supervisor/kpis/live` and the tiles the KPI consumer
pushes to the hub group `supervisors` (docs/ARCHITECTURE.md "Dashboard" fixes the frames).

From state, not buckets: routing's waiting entries, board lists and seats (shared/routing/live.py,
bounded single-partition reads; a pushed tile reads counts and the two oldest entries, so its cost
per event does not grow with the queue), except `serviceLevelToday`, which is the queue's buckets of the
current UTC day. A frame is pushed for an event of the last `LIVE_WINDOW` only (a replay, a
rebuild or a backlog after an outage pushes nothing: the page re-reads `/kpis/live` whenever it
reconnects). Routing writes its waiting entry after the conversation's event, so a queue's tile
counts the event's own conversation as the event says (waiting, or gone from waiting / the board)
whatever routing has written yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from shared.history.api import Envelope
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.realtime import Realtime
from shared.kernel.times import parse_stamp, stamp
from shared.kpis.queries import quarters_of
from shared.kpis.sums import total
from shared.routing.api import QueueCounts, QueueState, queue_counts, queue_states

log = logging.getLogger("psc.kpis")

GROUP = "supervisors"
LIVE_WINDOW = timedelta(minutes=5)
# Events after which a conversation no longer waits in, or is no longer on the board of, its queue.
_NOT_WAITING = frozenset(
    {
        "conversation.offered",
        "conversation.accepted",
        "conversation.abandoned",
        "conversation.closed",
        "conversation.transferred",
    }
)
_OFF_BOARD = frozenset({"conversation.abandoned", "conversation.closed", "conversation.transferred"})


async def service_level_today(store: DocumentStore, queue_id: str, now: datetime) -> float | None:
    start = datetime.combine(now.date(), time(), UTC)
    summed = total((await quarters_of(store, f"queue:{queue_id}", start, start + timedelta(days=1))).values())
    within, offered = summed.get("slWithin", 0), summed.get("slTotal", 0)
    return within / offered if offered else None


def _tile(
    queue_id: str, waiting: int, oldest: str | None, active: int, available: int, now: datetime
) -> dict[str, Any]:
    """A queue's tile numbers, as `/kpis/live` answers them and the consumer pushes them."""
    wait = max(0.0, (now - parse_stamp(oldest)).total_seconds()) if oldest else 0.0
    return {
        "queueId": queue_id,
        "waiting": waiting,
        "longestWaitSeconds": round(wait, 3),
        "active": active,
        "agentsAvailable": available,
    }


def queue_tile(state: QueueState, now: datetime, sl: float | None) -> dict[str, Any]:
    available = sum(1 for s in state.seats if s.presence == "available")
    active = len(state.live - state.waiting.keys())
    oldest = min(state.waiting.values(), default=None)
    tile = _tile(state.queue_id, len(state.waiting), oldest, active, available, now)
    return {**tile, "name": state.name, "serviceLevelToday": sl}


async def kpi_live(store: DocumentStore, clock: Clock) -> dict[str, Any]:
    """`{"asOf", "queues": [...], "agents": [...]}`, queues in priority order, agents by id."""
    now = clock.now()
    states = await queue_states(store)
    queues = [queue_tile(s, now, await service_level_today(store, s.queue_id, now)) for s in states]
    agents: dict[str, dict[str, Any]] = {}
    for state in states:
        for seat in state.seats:
            agents.setdefault(
                seat.agent_id,
                {
                    "agentId": seat.agent_id,
                    "presence": seat.presence,
                    "load": seat.load,
                    "capacity": seat.capacity,
                },
            )
    return {"asOf": stamp(now), "queues": queues, "agents": [agents[a] for a in sorted(agents)]}


def _as_of_event(counts: QueueCounts, envelope: Envelope, now: datetime) -> dict[str, Any]:
    """The queue's tile with the event's own conversation where the event puts it (routing may
    not have written its waiting entry or board entry yet, or may have already removed them)."""
    d: Mapping[str, Any] = envelope.data
    cid = envelope.aggregate_id
    waiting, live, oldest = counts.waiting, counts.live, list(counts.oldest)
    if envelope.type == "conversation.waiting" and d.get("queueId") == counts.queue_id:
        if not counts.conversation_waiting:
            waiting += 1
            oldest.append((cid, d.get("queuedAt") or envelope.at))
        if not counts.conversation_live:
            live += 1
    elif envelope.type in _NOT_WAITING:
        if counts.conversation_waiting:
            waiting -= 1
        oldest = [entry for entry in oldest if entry[0] != cid]
        if envelope.type in _OFF_BOARD and counts.conversation_live:
            live -= 1
    first = min((at for _, at in oldest), default=None) if waiting > 0 else None
    # The board lists waiting conversations too.
    return _tile(counts.queue_id, waiting, first, max(0, live - waiting), counts.available, now)


def _queues_of(envelope: Envelope) -> list[str]:
    d = envelope.data
    if envelope.type == "conversation.transferred":
        return [q for q in (d.get("fromQueueId"),) if q]
    return [q for q in (d.get("queueId"),) if q]


async def push_tiles(
    store: DocumentStore, realtime: Callable[[], Realtime], clock: Clock, envelope: Envelope
) -> int:
    """Push the tiles an event changed (its queue's, or the agent's); how many were sent. Never
    raises: a tile that could not be pushed is caught up by the page's next read. `realtime` is
    asked for the port only when there is something to push (it loads the hub's SDK)."""
    now = clock.now()
    if abs(now - parse_stamp(envelope.at)) > LIVE_WINDOW:
        return 0
    frames: list[dict[str, Any]] = []
    try:
        if envelope.type == "agent.presence":
            d = envelope.data
            frames.append(
                {
                    "kind": "agent",
                    "agentId": envelope.aggregate_id,
                    "presence": d.get("status"),
                    "load": d.get("load"),
                    "capacity": d.get("capacity"),
                    "asOf": stamp(parse_stamp(d.get("at") or envelope.at)),
                }
            )
        elif envelope.type.startswith("conversation."):
            for queue_id in _queues_of(envelope):
                tile = _as_of_event(await queue_counts(store, queue_id, envelope.aggregate_id), envelope, now)
                tile["serviceLevelToday"] = await service_level_today(store, queue_id, now)
                frames.append({"kind": "queue", **tile, "asOf": stamp(now)})
        for frame in frames:
            await realtime().send_to_group(GROUP, frame)
    except Exception:
        log.warning("live tile not pushed", extra={"eventId": envelope.id}, exc_info=True)
        return 0
    return len(frames)
