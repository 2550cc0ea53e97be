"""Follow-ups: how fast bookings become scheduled reminders, and what one send costs as the number
of pending reminders grows, on the embedded store, bus and channel.

    python -m bench.followups [--bookings 10000] [--pending 1000,10000,100000] [--sends 200]

1. Planning: `appointment.booked` events for N bookings (N patients, two offsets each) through the
   follow-ups' handler: records written, two reminders scheduled on the `followups` queue, a
   confirmation queued. Prints bookings/s and reminders scheduled/s.
2. Dispatch: with P reminders pending (spread over P/2 patients), the cost of sending one due
   reminder (`dispatch`: record, plan, policy, patient, intent, send, outcome): p50/p99 time and the
   store operations per send, counted through the store port. It must stay flat in P: every read is
   a point read or a query inside the patient's own partition.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.counting import CountingStore, summary
from shared.adapters.embedded_notify import EmbeddedNotifier
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.followups.api import Followups, dispatch, handle_event
from shared.followups.handler import reminder_id
from shared.followups.model import ReminderPolicy
from shared.followups.policies import Policies
from shared.kernel.catalog import CONTAINERS, QUEUES, TOPICS
from shared.kernel.clock import ManualClock
from shared.kernel.times import stamp

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START = NOW + timedelta(days=3, hours=3)  # a Thursday noon: no quiet hours, within every offset


def patient(n: int) -> dict[str, Any]:
    return {
        "id": f"p-{n}",
        "type": "patient",
        "name": f"Patient {n}",
        "timeZone": "UTC",
        "phone": f"+4860{n:07d}",
        "preferredChannel": "sms",
        "consent": {"sms": True, "email": False},
    }


def booked(n: int) -> dict[str, Any]:
    return {
        "id": f"a-{n}:1.1",
        "type": "appointment.booked",
        "aggregateId": f"a-{n}",
        "version": 1,
        "at": stamp(NOW),
        "data": {"patientId": f"p-{n}", "providerId": "dr-bench", "status": "booked", "start": stamp(START)},
    }


async def world(
    folder: Path, patients: int
) -> tuple[Followups, CountingStore, ManualClock, SqliteMessageBus]:
    clock = ManualClock(NOW)
    inner = SqliteDocumentStore(folder / "store.sqlite3", CONTAINERS, clock)
    bus = SqliteMessageBus(folder / "bus.sqlite3", QUEUES, clock, topics=TOPICS)
    store = CountingStore(inner)
    await inner.container("providers").upsert(
        {
            "id": "dr-bench",
            "type": "provider",
            "name": "Dr. Bench",
            "specialty": "x",
            "specialtyKey": "x",
            "timeZone": "UTC",
            "slotMinutes": 30,
        }
    )
    for n in range(patients):
        await inner.container("patients").upsert(patient(n))
    await Policies(inner).put_reminder_policy(
        ReminderPolicy(offsets=["P1D", "PT2H"], channels=["sms", "email", "portal"]), NOW
    )
    notifier = EmbeddedNotifier(store, bus, clock, sms_from="+18005550100", email_sender=None)
    fu = Followups(
        store,
        bus,
        clock,
        notifier,
        "bench-link-signing-key-0123456789abcdef",
        "https://psc.example.org",
        "https://portal.example.org",
    )
    return fu, store, clock, bus


async def planning(bookings: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        fu, store, _, _ = await world(Path(folder), bookings)
        store.take()
        began = time.perf_counter()
        for n in range(bookings):
            await handle_event(fu, booked(n))
        took = time.perf_counter() - began
        ops = summary(store.take(), bookings)
        print(
            f"planning: {bookings} bookings in {took:.1f} s = {bookings / took:.0f} bookings/s, "
            f"{2 * bookings / took:.0f} reminders scheduled/s; store operations per booking {ops}"
        )


async def dispatching(pending: int, sends: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        patients = max(pending // 2, sends)
        fu, store, clock, _ = await world(Path(folder), patients)
        for n in range(patients):
            await handle_event(fu, booked(n))
        clock.set(START - timedelta(days=1))
        times = []
        store.take()
        for n in range(sends):
            nid = reminder_id(f"a-{n}", 1, "P1D")
            body = {"notificationId": nid, "patientId": f"p-{n}", "due": stamp(START - timedelta(days=1))}
            began = time.perf_counter()
            outcome = await dispatch(fu, body)
            times.append(time.perf_counter() - began)
            assert outcome.startswith("sent"), outcome
        ops = summary(store.take(), sends)
        times.sort()
        print(
            f"dispatch with {2 * patients} pending reminders: p50 {1000 * statistics.median(times):.1f} ms, "
            f"p99 {1000 * times[int(0.99 * (len(times) - 1))]:.1f} ms; store operations per send {ops}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument("--pending", default="1000,10000,100000")
    parser.add_argument("--sends", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(planning(args.bookings))
    for size in (int(p) for p in args.pending.split(",")):
        asyncio.run(dispatching(size, args.sends))


if __name__ == "__main__":
    main()
