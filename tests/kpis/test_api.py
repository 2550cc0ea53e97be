"""`GET /api/supervisor/kpis` and `/kpis/live` through the registered functions, and the live
tiles the consumer pushes to the supervisors' hub group."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.kernel.clock import ManualClock
from shared.kernel.times import stamp
from shared.runtime import Runtime
from tests.conftest import invoke, registered_functions, token
from tests.history.support import topic_message, written_envelopes
from tests.kpis.sequence import HOUR_GEN, known_day
from tests.routing.support import SUPERVISOR, deliver, enqueue, presence, put_agent, put_queue, put_rules

HOUR = {"from": "2026-03-02T10:00:00Z", "to": "2026-03-02T11:00:00Z", "interval": "1h"}


async def consume(events: list[dict[str, Any]]) -> None:
    handler = registered_functions()["kpi_events"].get_user_function()
    for event in events:
        await handler(topic_message(event))


async def kpis(bearer: str = SUPERVISOR, **params: str) -> Any:
    return await invoke("supervisor_kpis", bearer=bearer, params=params)


async def test_a_supervisor_reads_a_queues_kpis_with_the_range_echoed_as_whole_buckets(
    runtime: Runtime,
) -> None:
    await consume(known_day())
    answer = await kpis(
        **{**HOUR, "from": "2026-03-02T11:07:00+01:00", "to": "2026-03-02T10:50:00Z"}, queueId="gen"
    )
    assert answer.status == 200, answer.json
    body = answer.json
    assert (body["from"], body["to"], body["interval"]) == (
        "2026-03-02T10:00:00.000Z",
        "2026-03-02T11:00:00.000Z",
        "1h",
    )
    assert body["totals"] == pytest.approx(HOUR_GEN)
    assert [row["start"] for row in body["series"]] == ["2026-03-02T10:00:00.000Z"]
    day = (await kpis(**{**HOUR, "to": "2026-03-03T10:00:00Z", "interval": "15m"})).json
    assert len(day["series"]) == 96


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({**HOUR, "from": "2026-03-02T11:00:00.001Z"}, "query.from"),
        ({**HOUR, "to": "2026-06-03T10:00:00.001Z"}, "query.to"),
        ({**HOUR, "interval": "1w"}, "interval"),
        ({**HOUR, "queueId": "gen", "agentId": "a-1"}, "query.agentId"),
    ],
)
async def test_a_bad_range_is_a_400_naming_the_field(
    runtime: Runtime, params: dict[str, str], field: str
) -> None:
    answer = await kpis(**params)
    assert answer.status == 400, answer.json
    assert any(field in e["field"] for e in answer.json["errors"]), answer.json


async def test_ninety_three_days_are_allowed(runtime: Runtime) -> None:
    answer = await kpis(**{**HOUR, "to": "2026-06-03T10:00:00Z", "interval": "1d"})
    assert answer.status == 200, answer.json
    assert len(answer.json["series"]) == 93


@pytest.mark.parametrize("roles", [("Agent",), ("Patient",), ("Administrator",)])
async def test_only_supervisors_read_kpis(runtime: Runtime, roles: tuple[str, ...]) -> None:
    other = token(*roles, sub="someone", patient_id="p-1" if "Patient" in roles else None)
    assert (await kpis(other, **HOUR)).status == 403
    assert (await invoke("supervisor_kpis_live", bearer=other)).status == 403


class Hub:
    """A recording Realtime port."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send_to_group(self, group: str, payload: dict[str, Any]) -> None:
        self.sent.append((group, dict(payload)))

    async def close(self) -> None: ...


async def test_live_reads_routing_state_and_an_escalation_pushes_its_queues_tile(
    runtime: Runtime, clock: ManualClock
) -> None:
    hub = Hub()
    runtime.realtime_adapter = hub  # type: ignore[assignment]
    await put_queue("general", serviceLevelSeconds=45)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=1)
    await put_agent("a-2", queues=["general"])
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    await deliver(runtime)  # offered to a-1, who is then full
    accept = await invoke(
        "accept_conversation",
        method="POST",
        bearer=token("Agent", sub="a-1"),
        route_params={"conversationId": "c-1"},
    )
    assert accept.status == 200, accept.json
    clock.advance(30)
    await enqueue(runtime, "c-2")
    await deliver(runtime)  # nobody free: waits
    clock.advance(12)

    live = await invoke("supervisor_kpis_live", bearer=SUPERVISOR)
    assert live.status == 200, live.json
    (general,) = [q for q in live.json["queues"] if q["queueId"] == "general"]
    assert general == {
        "queueId": "general",
        "name": "general",
        "waiting": 1,
        "longestWaitSeconds": 12.0,
        "active": 1,
        "agentsAvailable": 0,
        "serviceLevelToday": None,  # the consumer has counted nothing yet
    }
    agents = {a["agentId"]: a for a in live.json["agents"]}
    assert agents["a-1"] == {"agentId": "a-1", "presence": "dnd", "load": 1, "capacity": 1}  # full
    assert agents["a-2"]["presence"] == "offline"
    assert live.json["asOf"] == stamp(clock.now())

    # The consumer counts the events and pushes tiles; the queue's service level is then today's.
    await consume(await written_envelopes(runtime))
    frames = [frame for group, frame in hub.sent if group == "supervisors"]
    assert {f["kind"] for f in frames} == {"queue", "agent"}
    last_queue = [f for f in frames if f["kind"] == "queue"][-1]
    assert (last_queue["queueId"], last_queue["waiting"], last_queue["active"]) == ("general", 1, 1)
    assert last_queue["serviceLevelToday"] == 1.0
    assert set(last_queue) == {
        "kind",
        "queueId",
        "waiting",
        "longestWaitSeconds",
        "active",
        "agentsAvailable",
        "serviceLevelToday",
        "asOf",
    }
    last_agent = [f for f in frames if f["kind"] == "agent" and f["agentId"] == "a-1"][-1]
    assert (last_agent["presence"], last_agent["load"], last_agent["capacity"]) == ("dnd", 1, 1)
    live = await invoke("supervisor_kpis_live", bearer=SUPERVISOR)
    assert [q["serviceLevelToday"] for q in live.json["queues"] if q["queueId"] == "general"] == [1.0]


async def test_a_waiting_event_counts_its_conversation_before_routing_files_it(
    runtime: Runtime, clock: ManualClock
) -> None:
    hub = Hub()
    runtime.realtime_adapter = hub  # type: ignore[assignment]
    await put_queue("general", serviceLevelSeconds=45)
    await put_rules([], "general")
    await enqueue(runtime, "c-1")  # stored with its event; routing has not run yet
    (waiting,) = [e for e in await written_envelopes(runtime) if e["type"] == "conversation.waiting"]
    clock.advance(5)
    await consume([waiting])
    ((_, frame),) = hub.sent
    assert (frame["waiting"], frame["longestWaitSeconds"], frame["active"]) == (1, 5.0, 0)


async def test_old_events_push_nothing_and_a_hub_that_fails_loses_no_count(
    runtime: Runtime, clock: ManualClock
) -> None:
    class Broken(Hub):
        async def send_to_group(self, group: str, payload: dict[str, Any]) -> None:
            raise ConnectionError("hub down")

    runtime.realtime_adapter = Broken()  # type: ignore[assignment]
    await put_queue("general", serviceLevelSeconds=45)
    await put_rules([], "general")
    await enqueue(runtime, "c-1")
    events = await written_envelopes(runtime)
    await consume(events)  # the hub fails: the handler still succeeds
    answer = await kpis(
        **{
            "from": stamp(clock.now() - timedelta(hours=1)),
            "to": stamp(clock.now() + timedelta(hours=1)),
            "interval": "1h",
        }
    )
    assert answer.json["totals"]["incoming"] == 1

    hub = Hub()
    runtime.realtime_adapter = hub  # type: ignore[assignment]
    clock.advance(600)
    await consume(events)  # a replay ten minutes later
    assert hub.sent == []
