"""A list entry and its member live in different containers, so no write covers both: the order
(list first, unlist last) must make a crash in between harmless. Each test lets a real worker
process die (`os._exit`: no cleanup, no rollback) at one write of a command, on the same embedded
store, then checks what users see and that the client's retry mends it. Dying at the entry write
itself proves the order: had the member been written first, it would now be missing from its
list."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared.kernel.catalog import LISTS
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.runtime import Runtime
from shared.scheduling import index
from tests.conftest import invoke, seed_patients, token
from tests.functions.test_appointment_lists import every_page
from tests.functions.test_appointments import OTHER_SLOT, PATIENT, SLOT, book, put_provider
from tests.functions.test_escalations import NATIVE, post

REPO_ROOT = Path(__file__).resolve().parents[2]
DIED = 17

WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys

    from shared.kernel.clock import ManualClock
    from shared.runtime import build_runtime, use_runtime
    from tests.conftest import invoke, make_settings, token

    data_dir, container, operation, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    call = json.loads(sys.argv[5])

    async def main():
        runtime = await build_runtime(make_settings(data_dir), clock=ManualClock())

        target = runtime.store.container(container)
        real, calls = getattr(target, operation), []

        async def die_on_nth(*args, **kwargs):
            calls.append(1)
            if len(calls) == nth:
                os._exit({died})  # the process is gone: no finally, no rollback, no cleanup
            return await real(*args, **kwargs)

        # Services get containers from the store, which hands out one object per name.
        setattr(target, operation, die_on_nth)
        with use_runtime(runtime):
            answer = await invoke(call["name"], method="POST", bearer=token(*call["roles"], **call["claims"]),
                                  json_body=call.get("body"), headers=call.get("headers"),
                                  route_params=call.get("route"))
        print(answer.status, answer.body)

    asyncio.run(main())
    """
).format(died=DIED)


def die_at(runtime: Runtime, at: tuple[str, str, int], call: dict[str, object]) -> None:
    """Run one function call in another process that dies at the `nth` `container.operation`."""
    container, operation, nth = at
    data_dir = runtime.settings.data_dir
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(data_dir), container, operation, str(nth), json.dumps(call)],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == DIED, (done.stdout, done.stderr)


PATIENT_CALL = {"roles": ["Patient"], "claims": {"sub": "patient-sub-1", "patient_id": "p-1"}}


@pytest.mark.parametrize(
    "at",
    [
        pytest.param((LISTS, "upsert", 1), id="listing"),
        pytest.param(("appointments", "batch", 1), id="after-listing"),
    ],
)
async def test_a_booking_that_dies_midway_is_not_listed_and_its_retry_is_listed_once(
    runtime: Runtime, at: tuple[str, str, int]
) -> None:
    assert (await put_provider()).status == 201
    await seed_patients(runtime, "p-1")
    body = {"providerId": "dr-warsaw", "start": SLOT, "reason": "Follow-up"}
    die_at(
        runtime,
        at,
        {"name": "book_appointment", "body": body, "headers": {"Idempotency-Key": "k-1"}, **PATIENT_CALL},
    )
    # No appointment, so nothing listed (an entry written before the death is skipped).
    assert (await every_page({"patientId": "p-1"}))[0] == []
    assert (await every_page({"providerId": "dr-warsaw", "date": "2026-01-06"}))[0] == []
    # The client's retry (same key) finishes the booking, listed once in both lists.
    retried = await book(headers={"Idempotency-Key": "k-1"}, reason="Follow-up")
    assert retried.status == 201, retried.json
    items, _ = await every_page({"patientId": "p-1"})
    assert [a["id"] for a in items] == [retried.json["id"]]
    day, _ = await every_page({"providerId": "dr-warsaw", "date": "2026-01-06"})
    assert [a["id"] for a in day] == [retried.json["id"]]


@pytest.mark.parametrize(
    ("at", "shown_at"),
    [
        # The move is the appointment's first batch (the lease is a plain replace: no event).
        pytest.param(("appointments", "batch", 1), SLOT, id="at-the-move"),
        pytest.param((LISTS, "delete", 1), OTHER_SLOT, id="unlisting-the-old-place"),
    ],
)
async def test_a_reschedule_that_dies_midway_shows_the_appointment_once_and_its_retry_mends_the_list(
    runtime: Runtime, clock: ManualClock, at: tuple[str, str, int], shown_at: str
) -> None:
    assert (await put_provider()).status == 201
    await seed_patients(runtime, "p-1")
    booked = (await book()).json
    move = {"route": {"appointmentId": booked["id"]}, "body": {"start": OTHER_SLOT}, **PATIENT_CALL}
    die_at(runtime, at, {"name": "reschedule_appointment", **move})
    items, _ = await every_page({"patientId": "p-1"})
    assert [(a["id"], a["start"]) for a in items] == [(booked["id"], shown_at)]
    own = await invoke("my_appointments", bearer=PATIENT)
    assert [a["start"] for a in own.json["items"]] == [shown_at]
    day, _ = await every_page({"providerId": "dr-warsaw", "date": "2026-01-06"})
    assert [a["start"] for a in day] == [shown_at]
    # The retry (after the dead request's lease has run out) lands the move and unlists the old place.
    clock.advance(61)
    again = await invoke(
        "reschedule_appointment",
        method="POST",
        bearer=PATIENT,
        route_params={"appointmentId": booked["id"]},
        json_body={"start": OTHER_SLOT},
    )
    assert again.status == 200, again.json
    for list_key in (index.patient_appointments_list("p-1"), index.provider_appointments_list("dr-warsaw")):
        mended = await runtime.store.container(LISTS).query(Query(), partition_key=list_key)
        assert [e["start"] for e in mended.items] == [OTHER_SLOT]


@pytest.mark.parametrize(
    "at",
    [
        pytest.param((LISTS, "upsert", 1), id="listing"),
        pytest.param(("conversations", "batch", 1), id="after-listing"),
    ],
)
async def test_an_escalation_that_dies_midway_is_not_on_the_board_and_its_retry_is_once(
    runtime: Runtime, at: tuple[str, str, int]
) -> None:
    die_at(
        runtime,
        at,
        {"name": "escalate", "roles": ["Bot.Escalate"], "claims": {"sub": "bot-sp-1"}, "body": NATIVE},
    )
    boss = token("Supervisor", sub="super-1")
    board = await invoke("supervisor_board", bearer=boss)
    assert board.json["items"] == []
    retried = await post()
    assert retried.status == 202, retried.json
    board = await invoke("supervisor_board", bearer=boss)
    assert [row["id"] for row in board.json["items"]] == [retried.json["conversationId"]]
    entries = await runtime.store.container(LISTS).query_cross_partition(Query(), max_items=10)
    assert [e["ref"] for e in entries.items] == [retried.json["conversationId"]]
