"""Serving a queue's backlog in waiting order: when conversations have waited longer than a
moment (they wait for an agent, not a worker), one worker at a time serves the queue, holding a
lease document in the queue's partition, planning a page of decisions with the engine and
claiming them one agent's in turn, different agents at once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.kernel.catalog import ROUTING
from shared.kernel.documents import Query
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.routing.documents import Lease
from shared.routing.engine import Seat, Waiting, best_agent
from shared.routing.model import QueueSettings
from shared.routing.seats import SEAT_PAGE, WAITING_RANGE, parse_time, seat_pages, waiting_from_stored

if TYPE_CHECKING:
    from shared.routing.assignment import Assignment

WAITING_PAGE = 25
LEASE_ID = "server"
LEASE_DURATION = timedelta(seconds=30)


class Backlog:
    def __init__(self, assignment: Assignment) -> None:
        self._assignment = assignment
        self._entries = assignment.entries
        self._seat_docs = assignment.seats
        self._leases = Stored(assignment.store, ROUTING, Lease)
        self._clock = assignment.clock
        self.directory = assignment.directory

    async def serve(self, queue_id: str) -> list[tuple[str, str]]:
        """Serve a queue's backlog in order, one worker per queue at a time: the others would all
        race for the same head of the queue. The lease is only against that herd; correctness
        never depends on it (the ETags do that), and a dead holder's lease runs out."""
        assigned: list[tuple[str, str]] = []
        for _ in range(20):
            lease = await self._take_lease(queue_id)
            if lease is None:
                return assigned  # another worker is serving this queue
            try:
                served = await self.assign_queue(queue_id, limit=200)
            finally:
                await self._drop_lease(lease)
            assigned += served
            # A worker that found the lease taken left its conversation to us: look once more
            # after the release, so nothing that arrived meanwhile is left waiting.
            head = await self._entries.query(Query(WAITING_RANGE), partition_key=queue_id, max_items=1)
            if not served or not head.items:
                break
        return assigned

    async def _take_lease(self, queue_id: str) -> Lease | None:
        now = self._clock.now()
        current = await self._leases.read_or_none(LEASE_ID, queue_id)
        if current is not None and current.holder and (parse_time(current.until) or now) > now:
            return None
        fresh = Lease(
            id=LEASE_ID, queue_id=queue_id, holder=uuid.uuid4().hex, until=stamp(now + LEASE_DURATION)
        )
        try:
            if current is None:
                return await self._leases.create(fresh)
            fresh = fresh.over(current)
            return await self._leases.replace(fresh)
        except (Conflict, PreconditionFailed):
            return None

    async def _drop_lease(self, lease: Lease) -> None:
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._leases.replace(lease.changed(holder=None, until=None))

    async def assign_queue(self, queue_id: str, limit: int = 50) -> list[tuple[str, str]]:
        """Serve a queue in its waiting order while eligible agents have capacity. Each round
        plans a page of decisions with the engine (counting each planned offer against the
        agent's free capacity), then claims them: one agent's in turn, different agents at once."""
        settings = await self.directory.queue(queue_id)
        assigned: list[tuple[str, str]] = []
        while len(assigned) < limit:
            page = await self._entries.query_stored(
                Query(WAITING_RANGE, order_by=(("sortKey", False),)),
                partition_key=queue_id,
                max_items=WAITING_PAGE,
            )
            if not page.items:
                break
            seats = await self._seats(queue_id)
            if not seats:
                break
            now = self._clock.now()
            plan: dict[str, list[Waiting]] = {}
            planned = 0
            for entry in page.items:
                item = waiting_from_stored(entry)
                agent = best_agent(item, settings, seats.values(), now)
                if agent is None:
                    continue
                plan.setdefault(agent.agent_id, []).append(item)
                seats[agent.agent_id] = dataclasses.replace(
                    agent, used=agent.used + item.units, last_assigned_at=now
                )
                planned += 1
                if planned >= limit - len(assigned):
                    break
            if not plan:
                break
            rounds = await asyncio.gather(
                *(self._claim_in_turn(agent_id, items, settings) for agent_id, items in plan.items())
            )
            done = [pair for claimed in rounds for pair in claimed]
            assigned += done
            if not done:
                break
        return assigned

    async def _claim_in_turn(
        self, agent_id: str, items: list[Waiting], settings: QueueSettings
    ) -> list[tuple[str, str]]:
        claimed: list[tuple[str, str]] = []
        for item in items:
            result = await self._assignment.claim(item, agent_id, settings)
            if result == "offered":
                claimed.append((item.conversation_id, agent_id))
            elif result == "busy":
                break  # the seat was stale: the next round re-reads the seats
        return claimed

    async def _seats(self, queue_id: str) -> dict[str, Seat]:
        """At least a page of the best seats: a round of decisions rarely needs more."""
        seats: dict[str, Seat] = {}
        async for page in seat_pages(self._seat_docs, queue_id):
            seats.update(page)
            if len(seats) >= SEAT_PAGE:
                break
        return seats
