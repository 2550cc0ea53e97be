"""The outbox promise under a real crash: a relay host killed with SIGKILL while changes are being
written, once after the changes are committed and before they are published, once after they are
published and before the lease is checkpointed. After restarts every change is published, and the
session subscriber sees each message id exactly once, in order per aggregate."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from collections import defaultdict
from pathlib import Path

from shared.kernel.messages import subscription_entity
from tests.devhost.relay_host import open_bus, open_store

REPO = Path(__file__).resolve().parents[2]
LEDGER = subscription_entity("events", "ledger")
CUSTOMERS = 8
EVENTS = 240


async def start_relay(data_dir: Path, kill_point: str | None = None) -> asyncio.subprocess.Process:
    args = [sys.executable, "-m", "tests.devhost.relay_host", str(data_dir)]
    if kill_point:
        args.append(kill_point)
    process = await asyncio.create_subprocess_exec(
        *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert await line_from(process) == "ready"
    return process


async def line_from(process: asyncio.subprocess.Process, timeout: float = 30) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    assert line, "the relay host exited early"
    return line.decode().strip()


async def kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def test_a_relay_killed_mid_flight_publishes_every_change_once_in_order(tmp_path: Path) -> None:
    store, bus = open_store(tmp_path), open_bus(tmp_path)
    written: list[str] = []
    received: dict[str, list[str]] = defaultdict(list)
    stop = asyncio.Event()

    async def write_changes() -> None:
        rng = random.Random(7)
        versions: dict[str, int] = defaultdict(int)
        for _ in range(EVENTS):
            customer = f"c{rng.randrange(CUSTOMERS)}"
            versions[customer] += 1
            event_id = f"{customer}:{versions[customer]}.0"
            await store.container("orders").create({"id": event_id, "customerId": customer})
            written.append(event_id)
            await asyncio.sleep(0.01)

    async def subscribe() -> None:
        while not stop.is_set():
            session = await bus.accept_next_session(LEDGER)
            if session is None:
                await asyncio.sleep(0.02)
                continue
            while batch := await bus.receive_from_session(session, max_messages=10):
                for message in batch:
                    received[session.session_id].append(message.message_id)
                    await bus.complete(LEDGER, message.lock_token)
            await bus.release_session(session)

    writer = asyncio.create_task(write_changes())
    subscriber = asyncio.create_task(subscribe())

    relay = await start_relay(tmp_path, "before-publish:3")
    where, first_id = (await line_from(relay)).split()
    await kill(relay)  # committed, not yet published
    assert where == "before-publish"
    assert first_id in written
    assert first_id not in {m for ids in received.values() for m in ids}

    relay = await start_relay(tmp_path, "after-publish:2")
    where, _ = (await line_from(relay)).split()
    await kill(relay)  # published, lease not yet checkpointed: the next host sends it again
    assert where == "after-publish"

    relay = await start_relay(tmp_path)
    await writer
    for _ in range(600):
        if sum(len(ids) for ids in received.values()) >= len(written):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a late duplicate would show up now
    stop.set()
    await subscriber
    await kill(relay)
    await bus.close()
    await store.close()

    delivered = [message_id for ids in received.values() for message_id in ids]
    assert len(written) == EVENTS
    assert sorted(delivered) == sorted(written), "a change was lost or delivered twice"
    for customer, ids in received.items():
        assert ids == [f"{customer}:{n}.0" for n in range(1, len(ids) + 1)], f"{customer} out of order"
