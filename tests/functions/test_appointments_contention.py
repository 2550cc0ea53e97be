"""Many bookings of one slot at once, through the real handlers and the embedded store: exactly one
wins. Concurrency is real: the handlers' store operations run on the store's worker thread while
the event loop interleaves the requests; the threads variant adds separate store instances (own
connection, own worker thread, own event loop) on one file, as separate function instances are."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import make_settings, seed_patients, token
from tests.functions.test_appointments import AGENT, SLOT, all_items, book, drain_events, put_provider

N = 50


async def test_fifty_concurrent_bookings_of_one_slot_make_one_appointment(runtime: Runtime) -> None:
    assert (await put_provider()).status == 201
    await seed_patients(runtime, *(f"p-{i}" for i in range(N)))
    answers = await asyncio.gather(*(book(bearer=AGENT, patientId=f"p-{i}") for i in range(N)))
    assert Counter(a.status for a in answers) == {201: 1, 409: N - 1}
    appointments = await all_items(runtime, "appointments")
    assert len(appointments) == 1
    winner = next(a for a in answers if a.status == 201).json
    assert appointments[0]["id"] == winner["id"]
    slots = await all_items(runtime, "slots")
    assert [(s["appointmentId"], s["status"]) for s in slots] == [(winner["id"], "busy")]
    assert [m for m, _ in await drain_events(runtime)] == [f"appointment.booked:{winner['id']}"]


async def test_fifty_concurrent_reschedules_onto_one_slot_move_one_appointment(runtime: Runtime) -> None:
    assert (await put_provider()).status == 201
    await seed_patients(runtime, *(f"p-{i}" for i in range(N)))
    # N bookings on distinct slots over the next days, then all of them try to move to SLOT.
    starts = [
        f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:00.000Z"
        for day in (12, 13, 14)
        for hour in (7, 8, 9, 10)
        for minute in (0, 30)
    ]
    starts += [
        f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:00.000Z"
        for day in (15, 16)
        for hour in (7, 8, 9, 10, 12, 13, 14, 15)
        for minute in (0, 30)
    ]
    booked = []
    for i, start in enumerate(starts[:N]):
        answer = await book(bearer=AGENT, start=start, patientId=f"p-{i}")
        assert answer.status == 201, answer.json
        booked.append(answer.json)
    before = {item["id"]: item for item in await all_items(runtime, "appointments")}

    async def move(appointment_id: str) -> Any:
        from tests.conftest import invoke

        return await invoke(
            "reschedule_appointment",
            method="POST",
            bearer=AGENT,
            json_body={"start": SLOT},
            route_params={"appointmentId": appointment_id},
        )

    answers = await asyncio.gather(*(move(b["id"]) for b in booked))
    assert Counter(a.status for a in answers) == {200: 1, 409: N - 1}
    winner = next(a for a in answers if a.status == 200).json
    after = {item["id"]: item for item in await all_items(runtime, "appointments")}
    assert after[winner["id"]]["start"] == SLOT
    for appointment_id, item in after.items():
        if appointment_id != winner["id"]:
            # Untouched: same start, no lease left behind, same content (the ETag and the
            # version moved twice: the lease and its release).
            strip = {"_etag", "_ts", "version"}
            assert {k: v for k, v in item.items() if k not in strip} == {
                k: v for k, v in before[appointment_id].items() if k not in strip
            }
    slots = await all_items(runtime, "slots")
    assert len(slots) == N  # the winner's old slot was released, SLOT taken
    assert sorted(s["start"] for s in slots) == sorted(a["start"] for a in after.values())


def test_bookings_from_many_threads_and_store_instances_make_one_appointment(tmp_path: Any) -> None:
    """Eight "function instances" (threads, each with its own event loop and its own store and bus
    connections on the shared files), each sending a burst of bookings for the same slot."""
    clock = ManualClock()
    data = tmp_path / "data"
    agent = token("Agent", sub="agent-1")

    async def setup() -> None:
        rt = await build_runtime(make_settings(data), clock=clock)
        with use_runtime(rt):
            assert (await put_provider()).status == 201
            await seed_patients(rt, *(f"p-{index}-{i}" for index in range(8) for i in range(6)))
        await rt.close()

    asyncio.run(setup())
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def instance(index: int) -> None:
        async def run() -> None:
            rt = await build_runtime(make_settings(data), clock=clock)
            try:
                with use_runtime(rt):
                    await rt.store.ping()
                    barrier.wait()
                    answers = await asyncio.gather(
                        *(book(bearer=agent, patientId=f"p-{index}-{i}") for i in range(6))
                    )
                with lock:
                    statuses.extend(a.status for a in answers)
            finally:
                await rt.close()

        asyncio.run(run())

    threads = [threading.Thread(target=instance, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert Counter(statuses) == {201: 1, 409: 47}

    async def check() -> None:
        rt = await build_runtime(make_settings(data), clock=clock)
        try:
            assert len(await all_items(rt, "appointments")) == 1
            assert len(await all_items(rt, "slots")) == 1
        finally:
            await rt.close()

    asyncio.run(check())


async def test_concurrent_moves_of_one_appointment_leave_exactly_its_own_slot(runtime: Runtime) -> None:
    from tests.conftest import invoke

    assert (await put_provider()).status == 201
    await seed_patients(runtime, "p-1")
    booked = (await book(bearer=AGENT, patientId="p-1")).json
    targets = [
        f"2026-01-13T{hour:02d}:{minute:02d}:00.000Z" for hour in (7, 8, 9, 10, 12) for minute in (0, 30)
    ]

    async def move(start: str) -> int:
        answer = await invoke(
            "reschedule_appointment",
            method="POST",
            bearer=AGENT,
            json_body={"start": start},
            route_params={"appointmentId": booked["id"]},
        )
        return answer.status

    statuses = Counter(await asyncio.gather(*(move(t) for t in targets)))
    assert set(statuses) <= {200, 409}
    assert statuses[200] >= 1
    final = await runtime.store.container("appointments").read(booked["id"], booked["id"])
    assert final["start"] in targets
    assert "pending" not in final
    slots = await all_items(runtime, "slots")
    assert [(s["start"], s["appointmentId"]) for s in slots] == [(final["start"], booked["id"])]
