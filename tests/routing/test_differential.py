"""The store-backed routing against its reference model (tests/routing/reference.py, `Dispatcher`:
the engine's rules over plain dictionaries), for random escalations, presence changes, declines,
accepts and closes, through the real services, the real `routing` queue function and the embedded
store and bus on a manual clock.

After every event, once the routing queue is drained, the real state is loaded into the model:

* **nothing assignable is left waiting**: the model, run on that state, makes no decision. A
  conversation that waits does so because no agent of its queue may take it now (presence, free
  capacity, language, three declines), never because routing missed it;
* **an arrival goes where the model sends it**: when a conversation escalates while nothing else
  waits, the agent it is offered to is the model's `best_agent` for it on the state before.

Where the real system may differ from the model, and the test does not compare: when several
conversations wait at once (the model serves them all in one pass; the real system serves an
arrival at once and a backlog in order only after a grace of 5 s, so which waiting conversation
a freed agent gets first depends on timing), offer expiry (timed), transfers and supervisor
overrides (not the model's), and seat pages beyond the first (the model sees every agent)."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.conversations.api import ConversationDocument, Lifecycle, Status
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.kernel.errors import PscError
from shared.kernel.stored import load
from shared.routing.api import (
    AgentProfile,
    Assignment,
    Presence,
    QueueSettings,
    RoutingDirectory,
    RoutingRules,
)
from shared.routing.documents import AgentDocument, WaitingEntry
from shared.routing.seats import WAITING_RANGE, seat_of, waiting_of
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import make_settings
from tests.routing.reference import Dispatcher
from tests.routing.support import all_items, deliver, enqueue
from tests.routing.test_invariant_properties import PATIENT, staff

AGENTS = {"a-0": 1, "a-1": 2, "a-2": 1}  # capacity
LANGUAGES = {"a-0": ["en"], "a-1": ["en", "es"], "a-2": ["es"]}
QUEUES = {"q1": 10, "q2": 20}  # priority numbers
PRESENCES = ("available", "available", "busy", "away", "offline")
KINDS = (
    "escalate",
    "escalate",
    "escalate",
    "presence",
    "presence",
    "presence",
    "accept",
    "accept",
    "decline",
    "close",
)


@dataclass(frozen=True)
class Event:
    kind: str
    pick: int
    other: int


events = st.lists(
    st.builds(Event, kind=st.sampled_from(KINDS), pick=st.integers(0, 1000), other=st.integers(0, 1000)),
    min_size=4,
    max_size=24,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
# Everyone away, a conversation waits, one agent comes back: it must be served.
@example([Event("presence", n, 4) for n in range(3)] + [Event("escalate", 0, 1), Event("presence", 1, 0)])
# Everyone full, one closes: the freed capacity serves the waiting conversation.
@example(
    [Event("escalate", 0, 1) for _ in range(5)]
    + [Event("accept", 0, 0), Event("close", 0, 0), Event("escalate", 0, 1)]
)
def test_routing_makes_the_reference_models_decisions(script: list[Event]) -> None:
    asyncio.run(_play(script))


async def _play(script: list[Event]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock()
        runtime = await build_runtime(make_settings(Path(tmp)), clock=clock)
        try:
            with use_runtime(runtime):
                await _setup(runtime)
                await deliver(runtime)
                for number, event in enumerate(script):
                    before = await _model(runtime)
                    offered = await _apply(runtime, event, number)
                    await deliver(runtime, rounds=500)
                    clock.advance(1)  # stamps move on: round robin and idle times are ordered
                    if offered is not None and not before.waiting:
                        await _check_arrival(runtime, before, offered)
                    after = await _model(runtime)
                    assert after.assign_all(runtime.clock.now()) == [], "left waiting though assignable"
        finally:
            await runtime.close()


async def _setup(runtime: Runtime) -> None:
    directory = RoutingDirectory(runtime.store)
    now = runtime.clock.now()
    for queue_id, priority in QUEUES.items():
        settings = {"name": queue_id, "priority": priority, "acceptTimeoutSeconds": 3600, "wrapupSeconds": 0}
        await directory.put_queue(queue_id, QueueSettings.model_validate(settings), now)
    rules = {"rules": [{"when": {"language": ["es"]}, "queueId": "q2"}], "fallbackQueueId": "q1"}
    await directory.put_rules(RoutingRules.model_validate(rules), now)
    for agent_id, capacity in AGENTS.items():
        profile = AgentProfile(
            name=agent_id, capacity=capacity, languages=LANGUAGES[agent_id], queues=list(QUEUES)
        )
        await directory.put_agent(agent_id, profile, now)
        await Assignment(runtime.store, runtime.bus, runtime.clock).set_presence(agent_id, Presence.AVAILABLE)


async def _model(runtime: Runtime) -> Dispatcher:
    """The real state as the reference model: queues, seats (agents as routing sees them) and the
    waiting entries (with their exclusions and avoided agents)."""
    directory = RoutingDirectory(runtime.store)
    model = Dispatcher(queues={q: await directory.queue(q) for q in QUEUES})
    for item in await all_items(runtime, "agents"):
        doc = load(AgentDocument, item)
        model.update_seat(seat_of(doc), chosen=doc.chosen_presence, queues=doc.profile.queues)
    routing = runtime.store.container("routing")
    for queue_id in QUEUES:
        page = await routing.query(Query(WAITING_RANGE), partition_key=queue_id, max_items=1000)
        for entry in page.items:
            model.add_waiting(waiting_of(load(WaitingEntry, entry)))
    return model


async def _apply(runtime: Runtime, event: Event, number: int) -> str | None:
    """Apply one event; for an escalation, the new conversation's id."""
    lifecycle = Lifecycle(runtime.store, runtime.bus, runtime.clock, RoutingDirectory(runtime.store))
    docs = sorted(await all_items(runtime, "conversations"), key=lambda d: d["id"])

    def pick(*statuses: Status) -> dict[str, Any] | None:
        found = [d for d in docs if d["status"] in statuses]
        return found[event.pick % len(found)] if found else None

    try:
        if event.kind == "escalate":
            language = "es" if event.other % 3 == 0 else "en"
            urgency = ("routine", "urgent", "emergency")[event.other % 3]
            conversation_id = f"c-{number:02d}"
            await enqueue(runtime, conversation_id, language=language, urgency=urgency)
            return conversation_id
        if event.kind == "presence":
            agent_id = sorted(AGENTS)[event.pick % len(AGENTS)]
            chosen = Presence(PRESENCES[event.other % len(PRESENCES)])
            await Assignment(runtime.store, runtime.bus, runtime.clock).set_presence(agent_id, chosen)
        elif event.kind in ("accept", "decline"):
            doc = pick(Status.OFFERED)
            if doc is not None:
                act = lifecycle.accept if event.kind == "accept" else lifecycle.decline
                await act(staff(doc["agentId"]), doc["id"], None)
        elif event.kind == "close":
            doc = pick(Status.ACTIVE)
            if doc is not None:
                await lifecycle.close(staff(doc["agentId"]), doc["id"], None, None)
        elif event.kind == "abandon":
            doc = pick(Status.WAITING, Status.OFFERED)
            if doc is not None:
                await lifecycle.abandon(PATIENT, doc["id"], None)
    except PscError as error:
        if error.status >= 500:
            raise
    return None


async def _check_arrival(runtime: Runtime, before: Dispatcher, conversation_id: str) -> None:
    doc = load(
        ConversationDocument,
        await runtime.store.container("conversations").read(conversation_id, conversation_id),
    )
    entry_model = await _model(runtime)
    # The arrival as the model sees it: its waiting entry, or (offered) rebuilt from the document.
    item = entry_model.waiting.get(conversation_id)
    if item is None:
        from shared.routing.seats import waiting_entry

        settings = before.queues[doc.queue_id or ""]
        item = waiting_of(waiting_entry(doc, doc.queued_at or doc.created_at, settings.capacity_units))
    before.add_waiting(item)
    decisions = dict(before.assign_all(runtime.clock.now()))
    expected = decisions.get(conversation_id)
    if doc.status == Status.OFFERED:
        assert doc.agent_id == expected, (conversation_id, doc.agent_id, expected)
    else:
        assert expected is None, (conversation_id, doc.status, expected)
