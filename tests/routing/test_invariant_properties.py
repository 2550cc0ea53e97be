"""Routing's invariants for any accepted sequence of events, through the real services, the real
`routing` queue function and the embedded store and bus, with a manual clock: escalations,
presence changes, accepts, declines, transfers, closes (wrap-up, then closed), the patient
leaving, and time passing (offers expire, wrap-ups end, timed rules fire).

After every event, once the routing queue is drained:

* no agent holds more units than its capacity, and its `used` is what it holds;
* no conversation is held by two agents, and a conversation is held exactly when it is offered,
  active or in wrap-up, by the agent it names;
* every conversation's history is a path through the lifecycle graph (`TRANSITIONS`) from `open`
  to its current status.

Supervisor overrides (assign, transfer to an agent) are left out on purpose: they may put an
agent over capacity, as the reference product allows.

The pure engine's promises (who is chosen, in which order) are in
tests/unit/test_routing_properties.py; here the store-backed path keeps the invariants."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.auth.principal import Principal, Role
from shared.conversations.api import Lifecycle
from shared.conversations.model import HOLDS_CAPACITY, TRANSITIONS, Status
from shared.kernel.clock import ManualClock
from shared.kernel.errors import PscError
from shared.routing.api import Assignment, Transfers
from shared.routing.directory import RoutingDirectory
from shared.routing.model import Presence
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import make_settings
from tests.routing.support import all_items, deliver, enqueue

AGENTS = {"a-0": 1, "a-1": 2, "a-2": 3}  # capacity
LANGUAGES = {"a-0": ["en"], "a-1": ["en", "es"], "a-2": ["es"]}
QUEUES = ("q1", "q2")
PRESENCES = ("available", "available", "busy", "away", "offline")
KINDS = (
    "escalate",
    "escalate",
    "escalate",
    "presence",
    "presence",
    "accept",
    "accept",
    "accept",
    "decline",
    "transfer",
    "close",
    "close",
    "abandon",
    "tick",
    "tick",
)


@dataclass(frozen=True)
class Event:
    kind: str
    pick: int
    other: int


events = st.lists(
    st.builds(Event, kind=st.sampled_from(KINDS), pick=st.integers(0, 1000), other=st.integers(0, 1000)),
    min_size=5,
    max_size=30,
)


def staff(agent_id: str) -> Principal:
    return Principal(subject=agent_id, name=None, roles=frozenset({str(Role.AGENT)}))


PATIENT = Principal(subject="p", name=None, roles=frozenset({str(Role.BOT)}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_any_sequence_of_events_keeps_capacity_single_holders_and_the_lifecycle(script: list[Event]) -> None:
    asyncio.run(_play(script))


async def _play(script: list[Event]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock()
        runtime = await build_runtime(make_settings(Path(tmp)), clock=clock)
        try:
            with use_runtime(runtime):
                await _setup(runtime)
                for number, event in enumerate(script):
                    await _apply(runtime, clock, event, number)
                    await deliver(runtime, rounds=500)
                    await _check(runtime)
        finally:
            await runtime.close()


async def _setup(runtime: Runtime) -> None:
    from shared.routing.model import AgentProfile, QueueSettings, RoutingRules

    directory = RoutingDirectory(runtime.store)
    now = runtime.clock.now()
    for queue_id in QUEUES:
        settings = {"name": queue_id, "acceptTimeoutSeconds": 30, "wrapupSeconds": 20}
        await directory.put_queue(queue_id, QueueSettings.model_validate(settings), now)
    rules = {"rules": [{"when": {"language": ["es"]}, "queueId": "q2"}], "fallbackQueueId": "q1"}
    await directory.put_rules(RoutingRules.model_validate(rules), now)
    for agent_id, capacity in AGENTS.items():
        profile = AgentProfile(
            name=agent_id, capacity=capacity, languages=LANGUAGES[agent_id], queues=list(QUEUES)
        )
        await directory.put_agent(agent_id, profile, now)
        await Assignment(runtime.store, runtime.bus, runtime.clock).set_presence(agent_id, Presence.AVAILABLE)


async def _in(runtime: Runtime, *statuses: Status) -> list[dict[str, Any]]:
    docs = await all_items(runtime, "conversations")
    return sorted((d for d in docs if d["status"] in statuses), key=lambda d: d["id"])


async def _apply(runtime: Runtime, clock: ManualClock, event: Event, number: int) -> None:
    lifecycle = Lifecycle(runtime.store, runtime.bus, runtime.clock, RoutingDirectory(runtime.store))
    transfers = Transfers(Assignment(runtime.store, runtime.bus, runtime.clock))

    async def pick(*statuses: Status) -> dict[str, Any] | None:
        docs = await _in(runtime, *statuses)
        return docs[event.pick % len(docs)] if docs else None

    try:
        if event.kind == "escalate":
            language = "es" if event.other % 3 == 0 else "en"
            urgency = ("routine", "urgent", "emergency")[event.other % 3]
            await enqueue(runtime, f"c-{number:02d}", language=language, urgency=urgency)
        elif event.kind == "presence":
            agent_id = sorted(AGENTS)[event.pick % len(AGENTS)]
            await Assignment(runtime.store, runtime.bus, runtime.clock).set_presence(
                agent_id,
                PRESENCES[event.other % len(PRESENCES)],  # type: ignore[arg-type]
            )
        elif event.kind in ("accept", "decline"):
            doc = await pick(Status.OFFERED)
            if doc is not None:
                act = lifecycle.accept if event.kind == "accept" else lifecycle.decline
                await act(staff(doc["agentId"]), doc["id"], None)
        elif event.kind == "transfer":
            doc = await pick(Status.ACTIVE)
            if doc is not None:
                queue_id = QUEUES[event.other % len(QUEUES)]
                await transfers.transfer(
                    staff(doc["agentId"]), doc["id"], queue_id=queue_id, agent_id=None, correlation_id=None
                )
        elif event.kind == "close":
            doc = await pick(Status.ACTIVE)
            if doc is not None:
                await lifecycle.close(staff(doc["agentId"]), doc["id"], None, None)
        elif event.kind == "abandon":
            doc = await pick(Status.WAITING, Status.OFFERED)
            if doc is not None:
                await lifecycle.abandon(PATIENT, doc["id"], None)
        elif event.kind == "tick":
            clock.advance((5, 15, 31, 61)[event.other % 4])
    except PscError as error:
        # A refused event (409: it moved meanwhile) is an accepted input that changes nothing.
        if error.status >= 500:
            raise


async def _check(runtime: Runtime) -> None:
    agents = {a["id"]: a for a in await all_items(runtime, "agents")}
    conversations = {c["id"]: c for c in await all_items(runtime, "conversations")}
    holders: dict[str, list[str]] = {}
    for agent_id, agent in agents.items():
        held = agent.get("conversations", {})
        assert agent["used"] == sum(held.values()), agent_id
        assert agent["used"] <= agent["profile"]["capacity"], f"{agent_id} over capacity"
        for conversation_id in held:
            holders.setdefault(conversation_id, []).append(agent_id)
    for conversation_id, doc in conversations.items():
        holding = holders.get(conversation_id, [])
        assert len(holding) <= 1, f"{conversation_id} held by {holding}"
        if doc["status"] in HOLDS_CAPACITY:
            assert holding == [doc["agentId"]], (conversation_id, doc["status"], holding)
        else:
            assert holding == [], (conversation_id, doc["status"], holding)
        _check_path(doc)


def _check_path(doc: dict[str, Any]) -> None:
    """The history, replayed from `open`, is a path through the lifecycle graph to the status."""
    history = doc["history"]
    assert history[0]["event"] == "open"
    status = Status.OPEN
    for entry in history[1:]:
        sources, target, _ = TRANSITIONS[entry["event"]]
        assert status in sources, f"{doc['id']}: {entry['event']} from {status}"
        status = target
    assert status == doc["status"], doc["id"]
