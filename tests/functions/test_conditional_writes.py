"""`If-Match` and `ETag` on every write that replaces a document: queues, routing rules, agents,
presence, providers, patients and appointments (reschedule, cancel, status).

The lost-update promise is tested as two clients would break it: both read, both write with the
ETag they read, at the same time, from two threads that each have their own runtime (their own
SQLite connections, as two function instances would). Exactly one write succeeds, the other is a
412 problem, and what is stored is the winner's change."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import Answer, invoke, seed_patients, token
from tests.routing.support import ADMIN, SUPERVISOR, agent_token, deliver, enqueue, put_queue, put_rules

STRONG = re.compile(r'^"[\x21\x23-\x7e]+"$')
AGENT = agent_token("a-1")
STAFF = token("Agent", sub="agent-staff")
PATIENT = token("Patient", sub="patient-sub-1", patient_id="p-1")
WARSAW: dict[str, Any] = {
    "name": "Dr. Test Warsaw",
    "specialty": "cardiology",
    "timeZone": "Europe/Warsaw",
    "slotMinutes": 30,
    "weeklyHours": {d: [["08:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "bookingRules": {"maxDaysAhead": 30, "minNoticeMinutes": 0},
}
SLOTS = ("2026-01-06T07:00:00Z", "2026-01-06T07:30:00Z", "2026-01-06T08:00:00Z")

Call = Callable[[], Awaitable[Answer]]


class _BothRead:
    """A store that holds each racer after its first read of the contested document until the
    other racer has read it too: both writes start from the same version, the worst case."""

    def __init__(self, inner: Any, contested: tuple[str, str], barrier: threading.Barrier) -> None:
        self._inner, self._contested, self._barrier, self._met = inner, contested, barrier, False

    def container(self, name: str) -> Any:
        inner = self._inner.container(name)
        outer = self

        class Held:
            def __getattr__(self, attr: str) -> Any:
                return getattr(inner, attr)

            async def read(self, id: str, partition_key: str) -> Any:
                item = await inner.read(id, partition_key)
                if (name, id) == outer._contested and not outer._met:
                    outer._met = True
                    outer._barrier.wait(10)
                return item

        return Held()

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()


def _in_thread(
    runtime: Runtime, call: Call, contested: tuple[str, str], barrier: threading.Barrier
) -> Answer:
    async def run() -> Answer:
        peer = await build_runtime(runtime.settings, clock=runtime.clock)
        try:
            with use_runtime(dataclasses.replace(peer, store=_BothRead(peer.store, contested, barrier))):
                return await call()
        finally:
            await peer.close()

    return asyncio.run(run())


async def race(runtime: Runtime, contested: tuple[str, str], *calls: Call) -> list[Answer]:
    """The calls at once, each from its own thread and runtime on the same files, each having
    read the `contested` (container, id) document before either writes it."""
    barrier = threading.Barrier(len(calls))
    return list(
        await asyncio.gather(*(asyncio.to_thread(_in_thread, runtime, c, contested, barrier) for c in calls))
    )


def one_wins(answers: list[Answer]) -> Answer:
    """Exactly one of two writes succeeded and the other is a 412 problem; the winner."""
    assert sorted(a.status for a in answers) == [200, 412], [a.json for a in answers]
    lost = next(a for a in answers if a.status == 412)
    assert lost.headers["Content-Type"].startswith("application/problem+json")
    assert lost.json["type"] == "urn:psc:problem:precondition-failed"
    return next(a for a in answers if a.status == 200)


def put(
    name: str, body: Any, route: dict[str, str], bearer: str = ADMIN, if_match: str | None = None
) -> Call:
    headers = {} if if_match is None else {"If-Match": if_match}
    return lambda: invoke(
        name, method="PUT", bearer=bearer, json_body=body, route_params=route, headers=headers
    )


def post(
    name: str, route: dict[str, str], body: Any = None, bearer: str = STAFF, if_match: str | None = None
) -> Call:
    headers = {} if if_match is None else {"If-Match": if_match}
    return lambda: invoke(
        name, method="POST", bearer=bearer, json_body=body, route_params=route, headers=headers
    )


# Routing administration ---------------------------------------------------------------------------


async def test_queue_writes_honour_if_match_and_a_lost_update_is_impossible(runtime: Runtime) -> None:
    route = {"queueId": "general"}
    created = await put("put_queue", {"name": "General"}, route)()
    assert created.status == 201
    etag = created.headers["ETag"]
    assert STRONG.match(etag)
    read = await invoke("get_queue", bearer=SUPERVISOR, route_params=route)
    assert read.headers["ETag"] == etag

    winner = one_wins(
        await race(
            runtime,
            ("routing", "queue"),
            put("put_queue", {"name": "Alpha", "priority": 1}, route, if_match=etag),
            put("put_queue", {"name": "Beta", "priority": 2}, route, if_match=etag),
        )
    )
    now = await invoke("get_queue", bearer=SUPERVISOR, route_params=route)
    assert now.json["name"] == winner.json["name"]
    assert now.headers["ETag"] == winner.headers["ETag"] != etag

    stale = await put("put_queue", {"name": "Stale"}, route, if_match=etag)()
    assert stale.status == 412
    assert (await put("put_queue", {"name": "Any"}, route, if_match="*")()).status == 200
    assert (
        await put("put_queue", {"name": "Weak"}, route, if_match=f"W/{now.headers['ETag']}")()
    ).status == 412
    current = (await invoke("get_queue", bearer=SUPERVISOR, route_params=route)).headers["ETag"]
    listed = await put("put_queue", {"name": "Listed"}, route, if_match=f'"nope", {current}')()
    assert listed.status == 200
    assert (await put("put_queue", {"name": "Plain"}, route)()).status == 200  # no If-Match: unconditional
    assert (await invoke("get_queue", bearer=SUPERVISOR, route_params=route)).json["name"] == "Plain"

    absent = await put("put_queue", {"name": "New"}, {"queueId": "absent"}, if_match="*")()
    assert absent.status == 412
    assert (await invoke("get_queue", bearer=SUPERVISOR, route_params={"queueId": "absent"})).status == 404


async def test_a_malformed_if_match_is_a_400_and_writes_nothing(runtime: Runtime) -> None:
    route = {"queueId": "general"}
    await put("put_queue", {"name": "General"}, route)()
    before = await invoke("get_queue", bearer=SUPERVISOR, route_params=route)
    for header in ("abc", '"unterminated', '"a" "b"', '*, "a"'):
        answer = await put("put_queue", {"name": "Changed"}, route, if_match=header)()
        assert answer.status == 400, header
        assert answer.json["errors"][0]["field"] == "header.If-Match"
    after = await invoke("get_queue", bearer=SUPERVISOR, route_params=route)
    assert (after.json, after.headers["ETag"]) == (before.json, before.headers["ETag"])


async def test_routing_rules_writes_honour_if_match(runtime: Runtime) -> None:
    await put_queue("a")
    await put_queue("b")
    first = await put_rules([], "a")
    etag = first.headers["ETag"]
    assert (await invoke("get_routing_rules", bearer=SUPERVISOR)).headers["ETag"] == etag
    winner = one_wins(
        await race(
            runtime,
            ("routing", "rules"),
            put("put_routing_rules", {"rules": [], "fallbackQueueId": "a"}, {}, if_match=etag),
            put("put_routing_rules", {"rules": [], "fallbackQueueId": "b"}, {}, if_match=etag),
        )
    )
    now = await invoke("get_routing_rules", bearer=SUPERVISOR)
    assert now.json["fallbackQueueId"] == winner.json["fallbackQueueId"]
    assert now.headers["ETag"] == winner.headers["ETag"]


async def test_an_agents_profile_etag_is_not_broken_by_presence_and_load(runtime: Runtime) -> None:
    await put_queue("general")
    await put_rules([], "general")
    route = {"agentId": "a-1"}
    created = await put("put_agent", {"name": "A", "queues": ["general"]}, route)()
    assert created.status == 201
    etag = created.headers["ETag"]
    assert STRONG.match(etag)
    assert (await invoke("get_agent", bearer=SUPERVISOR, route_params=route)).headers["ETag"] == etag

    # The agent's own presence change and routing's load changes move the document on...
    assert (await put("put_my_presence", {"status": "available"}, {}, bearer=AGENT)()).status == 200
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    read = await invoke("get_agent", bearer=SUPERVISOR, route_params=route)
    assert (read.json["used"], read.json["presence"]) == (1, "busy")
    # ...but not the profile the administrator read.
    assert read.headers["ETag"] == etag

    winner = one_wins(
        await race(
            runtime,
            ("agents", "a-1"),
            put("put_agent", {"name": "Ann", "queues": ["general"], "capacity": 4}, route, if_match=etag),
            put("put_agent", {"name": "Bob", "queues": ["general"], "capacity": 5}, route, if_match=etag),
        )
    )
    now = await invoke("get_agent", bearer=SUPERVISOR, route_params=route)
    assert (now.json["name"], now.json["capacity"]) == (winner.json["name"], winner.json["capacity"])
    assert now.json["used"] == 1  # live state kept
    assert now.headers["ETag"] == winner.headers["ETag"] != etag
    absent = await put("put_agent", {"name": "New"}, {"agentId": "a-new"}, if_match=etag)()
    assert absent.status == 412
    assert (await invoke("get_agent", bearer=SUPERVISOR, route_params={"agentId": "a-new"})).status == 404


async def test_presence_writes_honour_if_match_without_failing_on_routings_own_writes(
    runtime: Runtime,
) -> None:
    await put_queue("general")
    await put_rules([], "general")
    await put("put_agent", {"name": "A", "queues": ["general"], "capacity": 3}, {"agentId": "a-1"})()
    read = await invoke("get_my_presence", bearer=AGENT)
    assert read.status == 200
    etag = read.headers["ETag"]
    assert STRONG.match(etag)
    assert read.json["chosenPresence"] == "offline"

    first = await put("put_my_presence", {"status": "available"}, {}, bearer=AGENT, if_match=etag)()
    assert first.status == 200
    etag = first.headers["ETag"]
    await enqueue(runtime, "c-1")
    await deliver(runtime)  # routing offers c-1: load and effective presence change
    read = await invoke("get_my_presence", bearer=AGENT)
    assert (read.json["used"], read.json["presence"]) == (1, "busy")
    assert read.headers["ETag"] == etag

    winner = one_wins(
        await race(
            runtime,
            ("agents", "a-1"),
            put("put_my_presence", {"status": "away"}, {}, bearer=AGENT, if_match=etag),
            put("put_my_presence", {"status": "dnd"}, {}, bearer=AGENT, if_match=etag),
        )
    )
    now = await invoke("get_my_presence", bearer=AGENT)
    assert now.json["chosenPresence"] == winner.json["chosenPresence"]
    assert now.headers["ETag"] == winner.headers["ETag"]
    assert now.json["used"] == 1


async def test_reading_my_presence_needs_the_agent_role_and_a_registration(runtime: Runtime) -> None:
    assert (await invoke("get_my_presence", bearer=SUPERVISOR)).status == 403
    assert (await invoke("get_my_presence")).status == 401
    unknown = await invoke("get_my_presence", bearer=agent_token("nobody"))
    assert unknown.status == 404
    assert unknown.headers["Content-Type"].startswith("application/problem+json")
    gone = await put("put_my_presence", {"status": "away"}, {}, bearer=agent_token("nobody"), if_match="*")()
    assert gone.status == 412


# Scheduling and patients --------------------------------------------------------------------------


async def test_provider_writes_honour_if_match(runtime: Runtime) -> None:
    route = {"providerId": "dr-warsaw"}
    created = await put("put_provider", WARSAW, route)()
    assert created.status == 201
    etag = created.headers["ETag"]
    assert STRONG.match(etag)
    winner = one_wins(
        await race(
            runtime,
            ("providers", "dr-warsaw"),
            put("put_provider", {**WARSAW, "slotMinutes": 20}, route, if_match=etag),
            put("put_provider", {**WARSAW, "slotMinutes": 60}, route, if_match=etag),
        )
    )
    now = await invoke("get_provider", bearer=PATIENT, route_params=route)
    assert now.json["slotMinutes"] == winner.json["slotMinutes"]
    assert now.headers["ETag"] == winner.headers["ETag"]


async def test_patient_writes_honour_if_match(runtime: Runtime) -> None:
    route = {"patientId": "p-9"}
    created = await put("put_patient", {"name": "Ann"}, route, bearer=STAFF)()
    etag = created.headers["ETag"]
    assert STRONG.match(etag)
    winner = one_wins(
        await race(
            runtime,
            ("patients", "p-9"),
            put("put_patient", {"name": "Ann Smith"}, route, bearer=STAFF, if_match=etag),
            put("put_patient", {"name": "Ann Jones"}, route, bearer=STAFF, if_match=etag),
        )
    )
    now = await invoke("get_patient", bearer=STAFF, route_params=route)
    assert now.json["name"] == winner.json["name"]
    assert now.headers["ETag"] == winner.headers["ETag"]


@pytest.fixture
async def booked(runtime: Runtime) -> Answer:
    assert (await put("put_provider", WARSAW, {"providerId": "dr-warsaw"})()).status == 201
    await seed_patients(runtime, "p-1", "p-2")
    answer = await invoke(
        "book_appointment",
        method="POST",
        bearer=PATIENT,
        json_body={"providerId": "dr-warsaw", "start": SLOTS[0], "reason": "Check-up"},
    )
    assert answer.status == 201, answer.json
    return answer


async def appointment(appointment_id: str) -> Answer:
    return await invoke("get_appointment", bearer=STAFF, route_params={"appointmentId": appointment_id})


async def test_two_reschedules_from_one_read_move_the_appointment_once(
    runtime: Runtime, booked: Answer
) -> None:
    route = {"appointmentId": booked.json["id"]}
    etag = booked.headers["ETag"]
    assert STRONG.match(etag)
    assert (await appointment(route["appointmentId"])).headers["ETag"] == etag
    winner = one_wins(
        await race(
            runtime,
            ("appointments", route["appointmentId"]),
            post("reschedule_appointment", route, {"start": SLOTS[1]}, if_match=etag),
            post("reschedule_appointment", route, {"start": SLOTS[2]}, if_match=etag),
        )
    )
    now = await appointment(route["appointmentId"])
    assert now.json["start"] == winner.json["start"]
    assert now.headers["ETag"] == winner.headers["ETag"]
    slots = await runtime.store.container("slots").query_cross_partition(_all(), max_items=100)
    assert [s["start"] for s in slots.items] == [winner.json["start"]]  # the loser took nothing


async def test_a_cancel_and_a_status_change_from_one_read_cannot_both_land(
    runtime: Runtime, booked: Answer
) -> None:
    route = {"appointmentId": booked.json["id"]}
    etag = booked.headers["ETag"]
    winner = one_wins(
        await race(
            runtime,
            ("appointments", route["appointmentId"]),
            post("cancel_appointment", route, if_match=etag),
            post("set_appointment_status", route, {"status": "arrived"}, if_match=etag),
        )
    )
    assert (await appointment(route["appointmentId"])).json["status"] == winner.json["status"]
    # A reschedule from the same old read is refused too, whoever won.
    late = await post("reschedule_appointment", route, {"start": SLOTS[1]}, if_match=etag)()
    assert late.status in (409, 412)


async def test_an_appointments_etag_survives_a_failed_reschedule_and_a_retry_of_a_done_change_succeeds(
    runtime: Runtime, booked: Answer
) -> None:
    route = {"appointmentId": booked.json["id"]}
    etag = booked.headers["ETag"]
    other = await invoke(
        "book_appointment",
        method="POST",
        bearer=STAFF,
        json_body={"providerId": "dr-warsaw", "start": SLOTS[1], "reason": "x", "patientId": "p-2"},
    )
    assert other.status == 201
    taken = await post("reschedule_appointment", route, {"start": SLOTS[1]}, if_match=etag)()
    assert taken.status == 409  # its lease was written and dropped: nothing a reader sees changed
    assert (await appointment(route["appointmentId"])).headers["ETag"] == etag

    moved = await post("reschedule_appointment", route, {"start": SLOTS[2]}, if_match=etag)()
    assert moved.status == 200
    # The same request again (its answer was lost): already done, so 200 (RFC 9110 §13.1.1).
    again = await post("reschedule_appointment", route, {"start": SLOTS[2]}, if_match=etag)()
    assert again.status == 200
    assert again.headers["ETag"] == moved.headers["ETag"]
    cancelled = await post("cancel_appointment", route, if_match=moved.headers["ETag"])()
    assert cancelled.status == 200
    assert (await post("cancel_appointment", route, if_match=moved.headers["ETag"])()).status == 200
    stale = await post("set_appointment_status", route, {"status": "arrived"}, if_match=etag)()
    assert stale.status == 412


# Every document we return carries a strong ETag; OpenAPI says which routes take If-Match --------


async def test_documents_carry_strong_etags_and_openapi_declares_if_match(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general", acceptTimeoutSeconds=30)
    await put_rules([], "general")
    await put("put_agent", {"name": "A", "queues": ["general"]}, {"agentId": "a-1"})()
    await put("put_my_presence", {"status": "available"}, {}, bearer=AGENT)()
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    conversation = await invoke("get_conversation", bearer=AGENT, route_params={"conversationId": "c-1"})
    accepted = await post("accept_conversation", {"conversationId": "c-1"}, bearer=AGENT)()
    for answer in (conversation, accepted):
        assert answer.status == 200
        assert STRONG.match(answer.headers["ETag"])
    assert accepted.headers["ETag"] != conversation.headers["ETag"]

    document = (await invoke("openapi")).json
    writes = {
        ("/api/manage/queues/{queueId}", "put"),
        ("/api/manage/routing-rules", "put"),
        ("/api/manage/agents/{agentId}", "put"),
        ("/api/manage/providers/{providerId}", "put"),
        ("/api/agents/me/presence", "put"),
        ("/api/me/profile", "put"),
        ("/api/patients/{patientId}", "put"),
        ("/api/appointments/{appointmentId}/reschedule", "post"),
        ("/api/appointments/{appointmentId}/cancel", "post"),
        ("/api/appointments/{appointmentId}/status", "post"),
    }
    for path, method in writes:
        operation = document["paths"][path][method]
        assert "If-Match" in [p["name"] for p in operation["parameters"]], path
        assert "412" in operation["responses"], path
    reads = {
        "/api/manage/queues/{queueId}",
        "/api/manage/routing-rules",
        "/api/manage/agents/{agentId}",
        "/api/agents/me/presence",
        "/api/providers/{providerId}",
        "/api/appointments/{appointmentId}",
        "/api/conversations/{conversationId}",
        "/api/patients/{patientId}",
        "/api/me/profile",
        "/api/fhir/Appointment/{appointmentId}",
        "/api/me/conversations/{conversationId}",
        "/api/conversations/{conversationId}/consults/{consultId}",
    }
    for path in reads:
        success = document["paths"][path]["get"]["responses"]["200"]
        assert "ETag" in success.get("headers", {}), path


def _all() -> Any:
    from shared.kernel.documents import Query

    return Query()
