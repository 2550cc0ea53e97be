"""Assignment cost per decision as the queue and the agent pool grow, on the embedded store.

    python -m bench.assignment [--decisions 200] [--sizes 1000:100,10000:1000,100000:5000]

Each size seeds one queue with W waiting conversations and A available agents (seats and agent
documents), then times `Assignment.assign_queue(limit=1)` — one real decision: read the head of
the waiting order and the best seats, pick with the engine, reserve the agent (ETag), offer the
conversation (ETag), drop the entry, refresh the seat. It must stay flat or logarithmic in W and A:
the waiting order and the seats are read through the indexed `sortKey`, a page at a time.
Also prints the store operations one decision costs (counted through the store port).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.counting import CountingStore, summary
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.conversations.model import ConversationDocument, move, new_conversation
from shared.kernel.catalog import CONTAINERS, QUEUES
from shared.kernel.clock import ManualClock
from shared.kernel.documents import BatchOperation
from shared.kernel.times import stamp
from shared.routing.assignment import Assignment
from shared.routing.backlog import Backlog
from shared.routing.directory import RoutingDirectory, new_agent_doc
from shared.routing.model import AgentProfile, Presence, QueueSettings
from shared.routing.seats import seat_document, waiting_entry

QUEUE = "bench"


def conversation_doc(n: int, at: datetime) -> ConversationDocument:
    doc = new_conversation(
        conversation_id=f"c-{n:07d}",
        bot_conversation_id=f"b-{n}",
        patient_id=f"p-{n}",
        patient_match="id",
        now=at,
        reason=None,
        summary=None,
        urgency="routine",
        specialty=None,
        language="en",
        context={},
        channel=None,
        locale=None,
        body_format="native",
    )
    return move(doc, "queue", at, queueId=QUEUE, priority=1 + n % 3, queuedAt=stamp(at))


async def seed(
    store: SqliteDocumentStore, clock: ManualClock, waiting: int, agents: int, decisions: int
) -> None:
    directory = RoutingDirectory(store)
    settings = QueueSettings.model_validate({"name": "Bench", "assignmentMethod": "highest-capacity"})
    await directory.put_queue(QUEUE, settings, clock.now())
    routing = store.container("routing")
    conversations = store.container("conversations")
    start = clock.now() - timedelta(hours=2)
    batch: list[BatchOperation] = []
    for n in range(waiting):
        at = start + timedelta(milliseconds=n)
        doc = conversation_doc(n, at)
        if n < decisions * 3:  # the head of the queue: the only conversations a decision reads
            await conversations.create(doc.body())
        batch.append(BatchOperation.create(waiting_entry(doc, doc.queued_at or stamp(at), 1).body()))
        if len(batch) == 100:
            await routing.batch(QUEUE, batch)
            batch = []
    profile = AgentProfile(name="Agent", languages=["en"], capacity=100, queues=[QUEUE])
    agent_docs = store.container("agents")
    batch = []
    for n in range(agents):
        used = n % 3  # unequal free capacity, so the ranking matters
        agent = new_agent_doc(f"a-{n:05d}", profile, clock.now()).changed(
            chosen_presence=Presence.AVAILABLE,
            presence=Presence.AVAILABLE,
            used=used,
            conversations={f"x-{n}-{i}": 1 for i in range(used)},
        )
        await agent_docs.create(agent.body())
        batch.append(BatchOperation.create(seat_document(agent, QUEUE, settings).body()))
        if len(batch) == 100:
            await routing.batch(QUEUE, batch)
            batch = []
    if batch:
        await routing.batch(QUEUE, batch)


async def run_size(waiting: int, agents: int, decisions: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        inner = SqliteDocumentStore(Path(tmp) / "store.sqlite3", CONTAINERS, clock)
        bus = SqliteMessageBus(Path(tmp) / "bus.sqlite3", QUEUES, clock)
        t0 = time.perf_counter()
        await seed(inner, clock, waiting, agents, decisions)
        seeded = time.perf_counter() - t0
        store = CountingStore(inner)
        assignment = Assignment(store, bus, clock)
        times = []
        store.take()
        for _ in range(decisions):
            t = time.perf_counter()
            done = await Backlog(assignment).assign_queue(QUEUE, limit=1)
            times.append(time.perf_counter() - t)
            assert len(done) == 1, "every decision should assign"
        ops = summary(store.take(), per=decisions)
        await inner.close()
        await bus.close()
    times.sort()
    return {
        "waiting": waiting,
        "agents": agents,
        "seed_s": round(seeded, 1),
        "p50_ms": round(statistics.median(times) * 1000, 2),
        "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 2),
        "ops": ops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--sizes", default="1000:100,10000:1000,100000:5000")
    args = parser.parse_args()
    sizes = [tuple(int(x) for x in part.split(":")) for part in args.sizes.split(",")]
    print(f"{'waiting':>8} {'agents':>7} {'p50 ms':>8} {'p99 ms':>8}  store operations per decision")
    for waiting, agents in sizes:
        row = asyncio.run(run_size(waiting, agents, args.decisions))
        line = f"{row['waiting']:>8} {row['agents']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8}  {row['ops']}"
        print(f"{line}  (seeded in {row['seed_s']} s)")


if __name__ == "__main__":
    main()
