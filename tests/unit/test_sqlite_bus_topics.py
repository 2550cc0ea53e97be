"""Embedded-bus specifics of topics and sessions the contract suite cannot show on every backend:
session exclusivity across processes, strict in-session ordering, the schema upgrade of a file
written before topics existed."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.adapters.sqlite_bus_delivery import SCHEMA
from shared.adapters.sqlite_file import SqliteFile
from shared.kernel.clock import ManualClock, SystemClock
from shared.kernel.messages import (
    OutgoingMessage,
    QueueSpec,
    SessionReceiver,
    SubscriptionSpec,
    TopicSpec,
    subscription_entity,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
QUEUES = {"jobs": QueueSpec("jobs", "JOBS_QUEUE")}
TOPICS = {
    "events": TopicSpec(
        "events",
        "EVENTS_TOPIC",
        subscriptions=(
            SubscriptionSpec(
                "ordered", "ORDERED_SUB", requires_session=True, lock_duration=timedelta(seconds=30)
            ),
            SubscriptionSpec("bookings", "BOOKINGS_SUB", subjects=("booked",)),
        ),
    )
}
ORDERED = subscription_entity("events", "ordered")
BOOKINGS = subscription_entity("events", "bookings")


def event(session_id: str, n: int, subject: str = "changed") -> OutgoingMessage:
    return OutgoingMessage(body=b"{}", message_id=f"{session_id}:{n}", subject=subject, session_id=session_id)


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteMessageBus]:
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", QUEUES, ManualClock(), topics=TOPICS)
    yield bus
    await bus.close()


def test_the_embedded_bus_receives_sessions(bus: SqliteMessageBus) -> None:
    assert isinstance(bus, SessionReceiver)


def test_a_queue_and_a_topic_cannot_share_a_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="share a name"):
        SqliteMessageBus(
            tmp_path / "bus.sqlite3", {"events": QueueSpec("events", "X")}, ManualClock(), topics=TOPICS
        )


async def test_a_subscription_cannot_be_sent_to_directly(bus: SqliteMessageBus) -> None:
    with pytest.raises(ValueError, match="send to its topic"):
        await bus.send(BOOKINGS, event("a", 0))


async def test_a_later_message_of_a_session_waits_until_the_earlier_one_is_settled(
    bus: SqliteMessageBus,
) -> None:
    for n in range(3):
        await bus.send("events", event("a", n))
    session = await bus.accept_next_session(ORDERED)
    assert session is not None

    (first,) = await bus.receive_from_session(session)
    assert await bus.receive_from_session(session, max_messages=5) == []
    await bus.complete(ORDERED, first.lock_token)
    rest = await bus.receive_from_session(session, max_messages=5)

    assert [m.message_id for m in rest] == ["a:1", "a:2"]


async def test_a_session_message_lock_is_renewed_through_its_session_only(bus: SqliteMessageBus) -> None:
    await bus.send("events", event("a", 0))
    session = await bus.accept_next_session(ORDERED)
    assert session is not None
    (got,) = await bus.receive_from_session(session)

    with pytest.raises(TypeError, match="session"):
        await bus.renew_lock(ORDERED, got.lock_token)
    renewed = await bus.renew_session_lock(session)
    assert renewed.locked_until >= session.locked_until


async def test_a_subject_no_subscription_wants_leaves_nothing_behind(bus: SqliteMessageBus) -> None:
    await bus.send("events", OutgoingMessage(body=b"{}", message_id="m", subject="booked", session_id="s"))
    await bus.send("events", OutgoingMessage(body=b"{}", message_id="n", subject="other", session_id="s"))

    depths = {d.queue: d for d in await bus.depths(["events", ORDERED, BOOKINGS])}

    assert (depths[ORDERED].active, depths[BOOKINGS].active, depths["events"].active) == (2, 1, 0)


async def test_a_bus_file_from_before_topics_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    version_1 = SqliteFile(
        path,
        label="old bus",
        schema=[statement for statement in SCHEMA if isinstance(statement, str)][:7],
        schema_version=1,
        busy_timeout=timedelta(seconds=5),
    )
    await version_1.write(
        lambda conn: conn.execute(
            "INSERT INTO messages (queue, state, message_id, body, properties, available_at, expires_at) "
            "VALUES ('jobs', 'active', 'old-1', x'7b7d', '{}', 0, 9000000000000000)"
        )
    )
    await version_1.close()

    bus = SqliteMessageBus(path, QUEUES, SystemClock(), topics=TOPICS)
    (old,) = await bus.receive("jobs")
    await bus.send("events", event("s", 0))
    session = await bus.accept_next_session(ORDERED)
    await bus.close()

    assert old.message_id == "old-1"
    assert session is not None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


_SESSION_WORKER = """
import asyncio, json, sys, time
from pathlib import Path
from datetime import timedelta
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.kernel.clock import SystemClock
from shared.kernel.messages import QueueSpec, SubscriptionSpec, TopicSpec

async def main() -> None:
    ordered = SubscriptionSpec("ordered", "S", requires_session=True, lock_duration=timedelta(minutes=5))
    topics = {"events": TopicSpec("events", "EVENTS_TOPIC", subscriptions=(ordered,))}
    bus = SqliteMessageBus(Path(sys.argv[1]), {}, SystemClock(), topics=topics)
    await bus.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    log = []
    idle = 0
    while idle < 20:
        session = await bus.accept_next_session("events/subscriptions/ordered")
        if session is None:
            idle += 1
            await asyncio.sleep(0.01)
            continue
        idle = 0
        held = [session.session_id, time.time_ns(), None, []]
        while batch := await bus.receive_from_session(session):
            for got in batch:
                await asyncio.sleep(0.002)
                await bus.complete("events/subscriptions/ordered", got.lock_token)
                held[3].append([got.message_id, time.time_ns()])
        held[2] = time.time_ns()
        await bus.release_session(session)
        log.append(held)
    await bus.close()
    print(json.dumps(log))

asyncio.run(main())
"""


async def test_a_session_is_held_by_one_process_at_a_time_and_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = SqliteMessageBus(path, {}, SystemClock(), topics=TOPICS)
    sessions = [f"agg-{i}" for i in range(12)]
    for n in range(6):  # interleaved, as many aggregates change at once
        for sid in sessions:
            await bus.send("events", event(sid, n))
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SESSION_WORKER,
            str(path),
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert await worker.stdout.readline() == b"ready\n"
    results = await asyncio.gather(*(worker.communicate(b"go\n") for worker in workers))

    holds: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    completions: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, (worker, (out, err)) in enumerate(zip(workers, results, strict=True)):
        assert worker.returncode == 0, err.decode()
        for sid, start, end, done in json.loads(out):
            holds[sid].append((start, end, index))
            completions[sid] += [(at, message_id) for message_id, at in done]
    assert len({index for held in holds.values() for _, _, index in held}) > 1, (
        "the processes did not compete"
    )
    for sid in sessions:
        spans = sorted(holds[sid])
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert start >= end, f"session {sid} was held by two processes at once"
        in_completion_order = [message_id for _, message_id in sorted(completions[sid])]
        assert in_completion_order == [f"{sid}:{n}" for n in range(6)]
    (depth,) = await bus.depths([ORDERED])
    assert (depth.active, depth.dead_letter) == (0, 0)
    await bus.close()


async def test_a_send_wakes_the_receivers_of_its_entities_in_this_process(
    bus: SqliteMessageBus, tmp_path: Path
) -> None:
    """The dev host's receivers wait on these instead of only their back-off; another bus object
    on the same file (the app's, beside the host's receiver) signals them too."""
    sender = SqliteMessageBus(tmp_path / "bus.sqlite3", QUEUES, ManualClock(), topics=TOPICS)
    ordered, bookings, jobs = bus.arrivals(ORDERED), bus.arrivals(BOOKINGS), bus.arrivals("jobs")
    try:
        await sender.send("events", event("s-1", 1))
        assert ordered.is_set()
        assert bookings.is_set()
        assert not jobs.is_set()
        ordered.clear()
        bookings.clear()
        await sender.send_batch("jobs", [OutgoingMessage(body=b"{}", message_id="j-1")])
        assert jobs.is_set()
        assert not ordered.is_set()
        # Another file's bus signals nothing here.
        other = SqliteMessageBus(tmp_path / "other.sqlite3", QUEUES, ManualClock(), topics=TOPICS)
        jobs.clear()
        await other.send("jobs", OutgoingMessage(body=b"{}", message_id="j-2"))
        assert not jobs.is_set()
        await other.close()
    finally:
        await sender.close()
