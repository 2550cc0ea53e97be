"""The reference model of routing: queues, seats and waiting conversations in memory, served by the
engine's rules (shared/routing/engine.py). Only tests use it: the property tests check the rules
through it, and the differential test checks the store-backed service against it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.routing.engine import Seat, Waiting, best_agent, presence_for_load, waiting_key
from shared.routing.model import Presence, QueueSettings


@dataclass(slots=True)
class Dispatcher:
    """Queues, seats and waiting conversations in memory, served by the rules above: the
    executable specification of assignment. Not thread-safe; the store-backed service must make the
    same decisions under concurrency.

    `chosen` holds each agent's hand-set presence; a seat's `presence` is always that choice after
    load. `members` says which queues an agent serves (None = every queue)."""

    queues: dict[str, QueueSettings] = field(default_factory=dict)
    seats: dict[str, Seat] = field(default_factory=dict)
    chosen: dict[str, Presence] = field(default_factory=dict)
    members: dict[str, frozenset[str] | None] = field(default_factory=dict)
    waiting: dict[str, Waiting] = field(default_factory=dict)
    assigned: dict[str, tuple[str, int]] = field(default_factory=dict)  # conversation → (agent, units)

    def add_waiting(self, item: Waiting) -> bool:
        """Queue a conversation; False (and no change) when it is already waiting or assigned, so a
        redelivered message changes nothing."""
        if item.queue_id not in self.queues:
            raise KeyError(f"unknown queue {item.queue_id}")
        if item.conversation_id in self.waiting or item.conversation_id in self.assigned:
            return False
        self.waiting[item.conversation_id] = item
        return True

    def remove(self, conversation_id: str) -> Waiting | None:
        """Take a conversation out of its queue (abandoned, overflowed, transferred)."""
        return self.waiting.pop(conversation_id, None)

    def update_seat(
        self, seat: Seat, *, chosen: Presence | None = None, queues: Iterable[str] | None = None
    ) -> Seat:
        """Add or change an agent. `chosen` is the hand-set presence (default: `seat.presence`);
        `queues` the queues served (default: unchanged, or every queue for a new agent)."""
        self.chosen[seat.agent_id] = seat.presence if chosen is None else chosen
        if queues is not None:
            self.members[seat.agent_id] = frozenset(queues)
        else:
            self.members.setdefault(seat.agent_id, None)
        stored = replace(
            seat, presence=presence_for_load(self.chosen[seat.agent_id], seat.used, seat.capacity)
        )
        self.seats[seat.agent_id] = stored
        return stored

    def release(self, conversation_id: str, now: datetime) -> Seat | None:
        """The agent finished (or declined) an assigned conversation: give its units back."""
        held = self.assigned.pop(conversation_id, None)
        if held is None:
            return None
        agent_id, units = held
        seat = self.seats[agent_id]
        used = max(seat.used - units, 0)
        self.seats[agent_id] = replace(
            seat,
            used=used,
            idle_since=now if used == 0 else seat.idle_since,
            presence=presence_for_load(self.chosen[agent_id], used, seat.capacity),
        )
        return self.seats[agent_id]

    def serves(self, agent_id: str, queue_id: str) -> bool:
        members = self.members.get(agent_id)
        return members is None or queue_id in members

    def serving_order(self) -> list[Waiting]:
        """Every waiting conversation in the order they are served: queue priority number, queue id,
        then `waiting_key`."""
        return sorted(
            self.waiting.values(),
            key=lambda item: (self.queues[item.queue_id].priority, item.queue_id, *waiting_key(item)),
        )

    def assign_all(self, now: datetime) -> list[tuple[str, str]]:
        """Offer every conversation that can be served now, in serving order, each to `best_agent`
        among the agents of its queue; returns (conversation id, agent id) in decision order.

        One pass is enough: a conversation passed over had no eligible agent, and assignments only
        take capacity away, so none appears for it later in the same pass."""
        decisions: list[tuple[str, str]] = []
        for item in self.serving_order():
            queue = self.queues[item.queue_id]
            candidates = (seat for seat in self.seats.values() if self.serves(seat.agent_id, item.queue_id))
            seat = best_agent(item, queue, candidates, now)
            if seat is None:
                continue
            used = seat.used + item.units
            self.seats[seat.agent_id] = replace(
                seat,
                used=used,
                last_assigned_at=now,
                presence=presence_for_load(self.chosen[seat.agent_id], used, seat.capacity),
            )
            del self.waiting[item.conversation_id]
            self.assigned[item.conversation_id] = (seat.agent_id, item.units)
            decisions.append((item.conversation_id, seat.agent_id))
        return decisions
