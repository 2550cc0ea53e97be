"""Embedded-bus promises beyond the port contract: durability, several instances and processes on one
file, TTL expiry, and the guard rails that keep it as strict as Service Bus."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.sqlite_bus import MAX_MESSAGE_BYTES, SqliteMessageBus
from shared.kernel.clock import ManualClock, SystemClock
from shared.kernel.errors import PayloadTooLarge, Unavailable
from shared.kernel.messages import (
    DeadLetterAdmin,
    MessageBus,
    MessageLockLost,
    OutgoingMessage,
    QueueReceiver,
    QueueSpec,
    ReceivedMessage,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

QUEUES = {
    spec.name: spec
    for spec in (
        QueueSpec("jobs", "JOBS_QUEUE", max_delivery_count=3, lock_duration=timedelta(seconds=30)),
        QueueSpec(
            "expiring",
            "EXPIRING_QUEUE",
            lock_duration=timedelta(seconds=120),
            default_message_ttl=timedelta(seconds=60),
        ),
        QueueSpec(
            "fleeting",
            "FLEETING_QUEUE",
            default_message_ttl=timedelta(seconds=60),
            dead_lettering_on_expiration=False,
        ),
    )
}

BusFactory = Callable[[], SqliteMessageBus]


def message(body: bytes = b"{}", message_id: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(body=body, message_id=message_id or f"unit-{uuid.uuid4()}")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def open_bus(tmp_path: Path, clock: ManualClock) -> AsyncIterator[BusFactory]:
    """Opens buses on one shared file and closes them all at the end."""
    opened: list[SqliteMessageBus] = []

    def factory() -> SqliteMessageBus:
        bus = SqliteMessageBus(tmp_path / "bus.sqlite3", QUEUES, clock)
        opened.append(bus)
        return bus

    yield factory
    for bus in opened:
        await bus.close()


@pytest.fixture
def bus(open_bus: BusFactory) -> SqliteMessageBus:
    return open_bus()


async def drain(bus: SqliteMessageBus, queue: str = "jobs") -> list[ReceivedMessage]:
    received: list[ReceivedMessage] = []
    while batch := await bus.receive(queue, max_messages=10):
        received += batch
    return received


def test_the_embedded_bus_implements_every_bus_port(tmp_path: Path) -> None:
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", QUEUES, ManualClock())

    assert isinstance(bus, MessageBus)
    assert isinstance(bus, QueueReceiver)
    assert isinstance(bus, DeadLetterAdmin)


async def test_constructing_a_bus_touches_no_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bus.sqlite3"
    bus = SqliteMessageBus(path, QUEUES, ManualClock())

    assert not path.parent.exists()
    await bus.ping()
    assert path.exists()
    await bus.close()


async def test_everything_survives_closing_and_reopening_the_bus(
    open_bus: BusFactory, clock: ManualClock
) -> None:
    first = open_bus()
    waiting = message(b"waiting")
    later = message(b"later")
    await first.send("jobs", waiting)
    await first.schedule("jobs", later, clock.now() + timedelta(minutes=5))
    await first.send("jobs", message(b"poison"))
    got = await first.receive("jobs", max_messages=2)
    poison = next(m for m in got if m.body == b"poison")
    await first.dead_letter("jobs", poison.lock_token, "Broken", "bad shape")
    await first.abandon("jobs", next(m for m in got if m.body == b"waiting").lock_token)
    await first.close()

    second = open_bus()
    (depth,) = await second.depths(["jobs"])
    assert (depth.active, depth.scheduled, depth.dead_letter) == (1, 1, 1)
    (dead,) = await second.peek_dead_letters("jobs")
    assert (dead.body, dead.reason, dead.description) == (b"poison", "Broken", "bad shape")
    (again,) = await second.receive("jobs")
    assert again.message_id == waiting.message_id
    assert again.delivery_count == 2
    await second.complete("jobs", again.lock_token)
    clock.advance(minutes=5)
    (scheduled,) = await second.receive("jobs")
    assert scheduled.message_id == later.message_id


async def test_duplicate_detection_survives_a_restart(open_bus: BusFactory) -> None:
    first = open_bus()
    sent = message()
    await first.send("jobs", sent)
    await first.close()

    second = open_bus()
    await second.send("jobs", sent)

    assert len(await drain(second)) == 1


async def test_a_message_locked_by_a_process_that_died_is_redelivered_after_the_lock_expires(
    open_bus: BusFactory, clock: ManualClock
) -> None:
    crashed = open_bus()
    sent = message()
    await crashed.send("jobs", sent)
    await crashed.receive("jobs")
    await crashed.close()  # never settled

    survivor = open_bus()
    assert await survivor.receive("jobs") == []
    clock.advance(31)
    (again,) = await survivor.receive("jobs")
    assert again.message_id == sent.message_id
    assert again.delivery_count == 2


async def test_two_bus_instances_on_one_file_never_deliver_a_message_twice(open_bus: BusFactory) -> None:
    buses = [open_bus(), open_bus()]
    sent = [message(f"{i}".encode()) for i in range(60)]
    for item in sent:
        await buses[0].send("jobs", item)
    taken: list[ReceivedMessage] = []

    async def worker(bus: SqliteMessageBus) -> None:
        while batch := await bus.receive("jobs", max_messages=2):
            taken.extend(batch)

    await asyncio.gather(*(worker(buses[i % 2]) for i in range(8)))

    ids = [m.message_id for m in taken]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(m.message_id for m in sent)


_CONSUMER = """
import asyncio, json, sys
from pathlib import Path
from datetime import timedelta
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.kernel.clock import SystemClock
from shared.kernel.messages import QueueSpec

async def main() -> None:
    queues = {"jobs": QueueSpec("jobs", "JOBS_QUEUE", lock_duration=timedelta(minutes=5))}
    bus = SqliteMessageBus(Path(sys.argv[1]), queues, SystemClock())
    await bus.ping()
    print("ready", flush=True)
    sys.stdin.readline()  # start together, so the consumers really compete
    done = []
    while batch := await bus.receive("jobs", max_messages=3):
        for received in batch:
            await asyncio.sleep(0.003)  # a little work, so the consumers interleave
            await bus.complete("jobs", received.lock_token)
            done.append(received.message_id)
    await bus.close()
    print(json.dumps(done))

asyncio.run(main())
"""


async def test_competing_consumer_processes_each_complete_distinct_messages(tmp_path: Path) -> None:
    # The consumers run on the real clock, so the producer must too (or messages look expired).
    bus = SqliteMessageBus(tmp_path / "bus.sqlite3", QUEUES, SystemClock())
    sent = {f"proc-{i}" for i in range(90)}
    for message_id in sorted(sent):
        await bus.send("jobs", message(message_id=message_id))

    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CONSUMER,
            str(tmp_path / "bus.sqlite3"),
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

    completed: list[str] = []
    for worker, (out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err.decode()
        mine = json.loads(out)
        assert mine, "a consumer process completed nothing: the processes did not compete"
        completed += mine
    assert len(completed) == len(sent)
    assert set(completed) == sent
    (depth,) = await bus.depths(["jobs"])
    assert (depth.active, depth.dead_letter) == (0, 0)
    await bus.close()


async def test_an_expired_message_is_dead_lettered_with_the_ttl_reason(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    sent = message(b"stale")
    await bus.send("expiring", sent)

    clock.advance(61)

    assert await bus.receive("expiring") == []
    (dead,) = await bus.peek_dead_letters("expiring")
    assert (dead.message_id, dead.reason, dead.body) == (sent.message_id, "TTLExpiredException", b"stale")
    (depth,) = await bus.depths(["expiring"])
    assert (depth.active, depth.dead_letter) == (0, 1)


async def test_an_expired_message_is_dropped_when_its_queue_does_not_dead_letter_expiries(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    await bus.send("fleeting", message())

    clock.advance(61)

    assert await bus.receive("fleeting") == []
    (depth,) = await bus.depths(["fleeting"])
    assert (depth.active, depth.scheduled, depth.dead_letter) == (0, 0, 0)


async def test_expiry_shows_in_depths_without_anyone_receiving(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    await bus.send("expiring", message())
    clock.advance(61)

    (depth,) = await bus.depths(["expiring"])

    assert (depth.active, depth.dead_letter) == (0, 1)


async def test_a_message_does_not_expire_while_a_receiver_holds_its_lock(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    await bus.send("expiring", message())
    (got,) = await bus.receive("expiring")

    clock.advance(61)

    await bus.complete("expiring", got.lock_token)
    assert await bus.peek_dead_letters("expiring") == []


async def test_a_scheduled_message_lives_its_ttl_from_its_scheduled_time(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    await bus.schedule("expiring", message(), clock.now() + timedelta(seconds=90))

    clock.advance(100)

    assert len(await bus.receive("expiring")) == 1


async def test_a_last_delivery_that_ends_in_lock_expiry_dead_letters_the_message(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    await bus.send("jobs", message())
    for _ in range(3):
        assert len(await bus.receive("jobs")) == 1
        clock.advance(31)

    (depth,) = await bus.depths(["jobs"])

    assert (depth.active, depth.dead_letter) == (0, 1)
    (dead,) = await bus.peek_dead_letters("jobs")
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert dead.delivery_count == 3


async def test_rescheduling_a_duplicate_returns_the_original_sequence_number_so_cancel_still_works(
    bus: SqliteMessageBus, clock: ManualClock
) -> None:
    reminder = message(b"reminder")
    at = clock.now() + timedelta(hours=1)
    first = await bus.schedule("jobs", reminder, at)

    retried = await bus.schedule("jobs", reminder, at)
    await bus.cancel_scheduled("jobs", retried)

    assert retried == first
    clock.advance(hours=2)
    assert await bus.receive("jobs") == []


async def test_sequence_numbers_are_never_reused_after_the_newest_message_is_completed(
    bus: SqliteMessageBus,
) -> None:
    await bus.send("jobs", message())
    (first,) = await bus.receive("jobs")
    await bus.complete("jobs", first.lock_token)

    await bus.send("jobs", message())
    (second,) = await bus.receive("jobs")

    assert second.sequence_number > first.sequence_number


async def test_a_resubmitted_dead_letter_bypasses_duplicate_detection(bus: SqliteMessageBus) -> None:
    sent = message()
    await bus.send("jobs", sent)
    (got,) = await bus.receive("jobs")
    await bus.dead_letter("jobs", got.lock_token, "Broken")
    (dead,) = await bus.peek_dead_letters("jobs")

    await bus.resubmit_dead_letter("jobs", dead.sequence_number)

    (again,) = await bus.receive("jobs")
    assert again.message_id == sent.message_id
    assert again.sequence_number > got.sequence_number


async def test_receive_hands_out_no_more_than_asked(bus: SqliteMessageBus) -> None:
    for _ in range(5):
        await bus.send("jobs", message())

    assert len(await bus.receive("jobs", max_messages=2)) == 2
    assert len(await bus.receive("jobs", max_messages=10)) == 3


async def test_a_lock_token_only_settles_on_its_own_queue(bus: SqliteMessageBus) -> None:
    await bus.send("jobs", message())
    (got,) = await bus.receive("jobs")

    with pytest.raises(MessageLockLost):
        await bus.complete("expiring", got.lock_token)
    with pytest.raises(MessageLockLost):
        await bus.complete("jobs", "not-a-lock-token")
    await bus.complete("jobs", got.lock_token)


@pytest.mark.parametrize(
    "call",
    [
        lambda bus: bus.send("nope", message()),
        lambda bus: bus.receive("nope"),
        lambda bus: bus.cancel_scheduled("nope", 1),
        lambda bus: bus.depths(["jobs", "nope"]),
        lambda bus: bus.peek_dead_letters("nope"),
    ],
    ids=["send", "receive", "cancel", "depths", "peek"],
)
async def test_an_unknown_queue_is_a_programming_error(bus: SqliteMessageBus, call: Callable) -> None:
    with pytest.raises(KeyError, match="nope"):
        await call(bus)


async def test_scheduling_with_a_naive_time_is_refused(bus: SqliteMessageBus) -> None:
    with pytest.raises(ValueError, match="timezone"):
        await bus.schedule("jobs", message(), datetime(2026, 1, 5, 10, 0))


async def test_a_message_over_the_service_bus_limit_is_refused_as_service_bus_refuses_it(
    bus: SqliteMessageBus,
) -> None:
    # Service Bus counts headers and properties too: a 256 KiB body alone is already too big.
    with pytest.raises(PayloadTooLarge, match="256 KB"):
        await bus.send("jobs", message(b"x" * MAX_MESSAGE_BYTES))
    await bus.send("jobs", message(b"x" * (MAX_MESSAGE_BYTES - 1024)))


async def test_an_application_property_service_bus_cannot_carry_is_refused(bus: SqliteMessageBus) -> None:
    bad = OutgoingMessage(body=b"{}", message_id="m", application_properties={"when": object()})  # type: ignore[dict-item]

    with pytest.raises(TypeError, match="when"):
        await bus.send("jobs", bad)


async def test_close_is_idempotent_and_final(bus: SqliteMessageBus) -> None:
    await bus.ping()

    await bus.close()
    await bus.close()

    with pytest.raises(Unavailable):
        await bus.ping()


async def test_closing_a_bus_that_was_never_used_is_harmless(tmp_path: Path) -> None:
    await SqliteMessageBus(tmp_path / "never.sqlite3", QUEUES, ManualClock()).close()

    assert not (tmp_path / "never.sqlite3").exists()


async def test_a_bus_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    bus = SqliteMessageBus(path, QUEUES, ManualClock())

    with pytest.raises(Unavailable):
        await bus.ping()
    await bus.close()


async def test_the_bus_file_uses_write_ahead_logging(bus: SqliteMessageBus, tmp_path: Path) -> None:
    await bus.ping()

    with sqlite3.connect(tmp_path / "bus.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
