"""A week of demo history (`python -m devhost --demo`), made the way real history is made: the bot's
escalations, routing's offers, agents accepting, writing, transferring and closing, patients
leaving, appointments booked in the conversations and marked arrived, fulfilled or no-show, all
through the services and their outbox events, with a manual clock stepping through the seven UTC
days before today. Nothing is written into KPI aggregates or exports by hand: they are computed
from these events like any others (filed in the history and the week's KPIs rebuilt from it at
once, as the consumers and `ops kpis rebuild` do; `_carry_on` says why).

Not in it: follow-ups (reminders, confirmations, surveys) are not played on the week's clock. The
follow-ups consumer meets the week's `appointment.*` and `conversation.closed` events when the
relay publishes them after start and plans from them on the host's clock: a reminder only for a
visit still ahead (booked in the week's last days) whose offset has not passed, and no survey
(surveys need a survey policy, which the demo leaves off). The dashboard's follow-up KPIs
therefore count only what is sent live.

Seeded once, into a fresh embedded demo store only (its own marker in `lookups`, created first, and
no demo agent yet): the history must come before the agents' live presence, and the week is never
written twice. Deterministic: the same plan every time (a seeded random generator).
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.auth.principal import Principal
from shared.kernel.catalog import AGENTS, APPOINTMENTS, CONVERSATIONS, LOOKUPS, ROUTING_QUEUE
from shared.kernel.clock import ManualClock
from shared.kernel.errors import Conflict
from shared.kernel.times import stamp
from shared.runtime import Runtime, build_runtime

MARKER = "demo-week"
DAYS = 7
SEED = 15
# Per day: how many conversations, between 08:00 and 18:00 UTC (fewer on the weekend).
WEEKDAY_CONVERSATIONS, WEEKEND_CONVERSATIONS = 14, 5
BOT = Principal(subject="demo-health-bot", name=None, roles=frozenset({"Bot.Escalate"}))
SUPERVISOR = Principal(subject="demo-supervisor", name=None, roles=frozenset({"Supervisor"}))
AGENT_IDS = ("demo-agent-1", "demo-agent-2", "demo-agent-3")
PATIENTS = ("p-demo-1", "p-demo-2")
# Who escalates why: (weight, urgency, language, context); routing picks the queue by its rules.
KINDS: list[tuple[int, str, str, dict[str, Any]]] = [
    (4, "routine", "en", {"intent": "appointment"}),
    (3, "routine", "en", {}),
    (2, "urgent", "en", {}),
    (1, "routine", "es", {}),
]
# What happens next: (weight, outcome).
OUTCOMES = [(10, "handled"), (2, "abandoned"), (1, "short-abandoned"), (2, "transferred"), (1, "declined")]


def agent(agent_id: str) -> Principal:
    return Principal(subject=agent_id, name=None, roles=frozenset({"Agent"}))


@dataclass
class Week:
    """The services on a manual clock over the dev host's own embedded store and bus."""

    runtime: Runtime
    clock: ManualClock
    made: dict[str, int] = field(default_factory=dict)
    # Booked visits waiting for their outcome: (start, appointment id, outcome).
    pending: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.made[what] = self.made.get(what, 0) + 1

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def settle(self) -> None:
        """Run every routing message that is due now, as the `routing` function would."""
        from shared.routing.api import handle_routing_message

        bus: Any = self.runtime.bus
        rt = self.runtime
        for _ in range(500):
            messages = await bus.receive(ROUTING_QUEUE, max_messages=20)
            if not messages:
                return
            for message in messages:
                await handle_routing_message(rt.store, rt.bus, rt.clock, json.loads(message.body))
                await bus.complete(ROUTING_QUEUE, message.lock_token)

    async def conversation(self, cid: str) -> Any:
        from shared.conversations.api import conversations

        return await conversations.read(self.runtime.store, cid)


async def seed_demo_week(runtime: Runtime, seed_base: Callable[[Runtime], Awaitable[list[str]]]) -> list[str]:
    """The week, then `seed_base` (the routing demo: queues, rules, agents) at the week's start.
    Lines for the dev host banner."""
    settings = runtime.settings
    if settings.store != "embedded" or settings.bus != "embedded":
        return ["Demo week: only seeded into the embedded store."]
    from shared.kernel.errors import NotFound
    from shared.routing.api import RoutingDirectory

    try:
        await RoutingDirectory(runtime.store).agent_doc(AGENT_IDS[0])
        return []  # seeded before (with or without a week): never a second history
    except NotFound:
        pass
    today = datetime.combine(runtime.clock.now().astimezone(UTC).date(), time(), tzinfo=UTC)
    start = today - timedelta(days=DAYS)
    try:
        # Claimed first: a start that dies half-way through the week never plays it again.
        await runtime.store.container(LOOKUPS).create(
            {"id": MARKER, "type": "demo-marker", "createdAt": stamp(runtime.clock.now())}
        )
    except Conflict:
        return []
    clock = ManualClock(start + timedelta(hours=7))
    week_runtime = await build_runtime(settings, clock=clock)
    try:
        await seed_base(week_runtime)
        week = Week(week_runtime, clock)
        await _play(week, start)
        # The agents end the week available, as a freshly seeded demo has them.
        clock.set(max(clock.now(), runtime.clock.now() - timedelta(seconds=1)))
        await week.settle()
        await _presence(week, "available")
        await _carry_on(week_runtime, start.date(), (today - timedelta(days=1)).date())
    finally:
        await week_runtime.close()
    counts = ", ".join(f"{n} {what}" for what, n in sorted(week.made.items()))
    return [f"Demo week {start.date()}..{(today - timedelta(days=1)).date()} through the services: {counts}."]


async def _carry_on(runtime: Runtime, first: date, last: date) -> None:
    """What the relay, the history consumer and the KPI consumer do with these events, done now so
    the first page view has the week: each event filed in the history (`history.record`, the
    consumer's own code) and the week's KPI buckets rebuilt from it (`kpis.rebuild`, as
    `python -m ops kpis rebuild` does). The relay still publishes every event when the host runs;
    the history and the KPI consumer then meet them as replays and change nothing (idempotent by
    message id). Without this the KPI consumer, holding at most 8 sessions (one per conversation)
    for the 60 s session idle timeout each, takes about half an hour to catch up."""
    from shared.history.api import parse_envelope, record
    from shared.kernel.documents import Query, where
    from shared.kernel.outbox import EventDocument
    from shared.kernel.stored import load
    from shared.kpis.api import rebuild

    query = Query((where("type", "=", "event"),))
    for container in (CONVERSATIONS, APPOINTMENTS, AGENTS):
        continuation: str | None = None
        while True:
            page = await runtime.store.container(container).query_cross_partition(
                query, max_items=500, continuation=continuation
            )
            for item in page.items:
                await record(runtime.store, parse_envelope(load(EventDocument, item).envelope()))
            continuation = page.continuation
            if not continuation:
                break
    settings = runtime.settings
    await rebuild(runtime.store, first, last, settings.kpi_short_abandon_seconds, runtime.clock.now().date())


async def _presence(week: Week, status: str) -> None:
    from shared.routing.api import Assignment, Presence

    rt = week.runtime
    for agent_id in AGENT_IDS:
        await Assignment(rt.store, rt.bus, rt.clock).set_presence(agent_id, Presence(status))


async def _play(week: Week, start: datetime) -> None:
    rng = random.Random(SEED)  # noqa: S311 - a repeatable demo plan, not a secret
    number = 0
    for n in range(DAYS):
        day = start + timedelta(days=n)
        week.clock.set(max(week.clock.now(), day + timedelta(hours=8)))
        await _presence(week, "available")
        count = WEEKEND_CONVERSATIONS if day.weekday() >= 5 else WEEKDAY_CONVERSATIONS
        for _ in range(count):
            number += 1
            week.advance(rng.randint(60, 2400))
            await _one(week, rng, f"demo-week-{number}")
            await _outcomes(week)
        week.advance(300)
        await week.settle()
        await _presence(week, "offline")


async def _outcomes(week: Week) -> None:
    """Mark the visits that started at least 15 minutes ago: arrived, fulfilled or no-show."""
    from shared.kernel.times import parse_stamp
    from shared.scheduling.api import Scheduling

    rt = week.runtime
    due = [p for p in week.pending if parse_stamp(p[0]) + timedelta(minutes=15) <= rt.clock.now()]
    for item in due:
        week.pending.remove(item)
        _, appointment_id, outcome = item
        await Scheduling(rt.store, rt.bus, rt.clock).set_status(
            SUPERVISOR, appointment_id, outcome, "demo-outcome"
        )
        week.count(f"visits {outcome}")


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(weighted, weights=[w[0] for w in weighted])[0]


async def _one(week: Week, rng: random.Random, bot_conversation_id: str) -> None:
    from shared.conversations.api import Lifecycle, Messages
    from shared.escalations.api import EscalationIntake, EscalationRequest
    from shared.routing.api import Assignment, RoutingDirectory, Transfers

    rt = week.runtime
    _, urgency, language, context = _pick(rng, KINDS)
    (_, outcome) = _pick(rng, OUTCOMES)
    body = {
        "botConversationId": bot_conversation_id,
        "patient": {"id": rng.choice(PATIENTS)},
        "reason": "Demo escalation",
        "triage": {"urgency": urgency},
        "language": language,
        "context": context,
        "transcript": [],
    }
    request = EscalationRequest.model_validate(body)
    result = await EscalationIntake(rt.store, rt.bus, rt.clock).escalate(
        request.normalized(), actor=BOT, webhook_id=None, correlation_id=f"demo-{bot_conversation_id}"
    )
    cid = result.answer["conversationId"]
    week.count("conversations")
    await week.settle()
    lifecycle = Lifecycle(rt.store, rt.bus, rt.clock, RoutingDirectory(rt.store))
    if outcome in ("abandoned", "short-abandoned"):
        week.advance(rng.randint(3, 9) if outcome == "short-abandoned" else rng.randint(20, 240))
        await lifecycle.abandon(SUPERVISOR, cid, None)
        await week.settle()
        return
    doc = await week.conversation(cid)
    if doc.agent_id is None:  # nobody could take it now: the patient gives up
        week.advance(rng.randint(30, 300))
        await lifecycle.abandon(SUPERVISOR, cid, None)
        await week.settle()
        return
    if outcome == "declined":
        week.advance(rng.randint(5, 20))
        await lifecycle.decline(agent(doc.agent_id), cid, None)
        await week.settle()
        doc = await week.conversation(cid)
        if doc.agent_id is None:
            week.advance(rng.randint(30, 120))
            await lifecycle.abandon(SUPERVISOR, cid, None)
            await week.settle()
            return
    week.advance(rng.randint(4, 50))
    holder = agent(doc.agent_id)
    await lifecycle.accept(holder, cid, None)
    messages = Messages(rt.store, rt.clock)
    patient = Principal(
        subject=f"demo-{doc.patient_id}", name=None, roles=frozenset({"Patient"}), patient_id=doc.patient_id
    )
    for turn in range(rng.randint(2, 6)):
        week.advance(rng.randint(10, 90))
        if turn % 2 == 0:
            await messages.post(holder, cid, side="staff", text="Demo reply", correlation_id=None)
        else:
            await messages.post(patient, cid, side="patient", text="Demo message", correlation_id=None)
        week.count("messages")
    if outcome == "transferred":
        week.advance(rng.randint(30, 120))
        await Transfers(Assignment(rt.store, rt.bus, rt.clock)).transfer(
            holder, cid, queue_id="general", agent_id=None, correlation_id=None
        )
        await week.settle()
        doc = await week.conversation(cid)
        if doc.agent_id is None:
            week.advance(rng.randint(30, 120))
            await lifecycle.abandon(SUPERVISOR, cid, None)
            await week.settle()
            return
        week.advance(rng.randint(4, 40))
        holder = agent(doc.agent_id)
        await lifecycle.accept(holder, cid, None)
    if context.get("intent") == "appointment":
        await _book(week, rng, holder, cid, doc.patient_id)
    week.advance(rng.randint(60, 600))
    await lifecycle.close(holder, cid, "resolved", None)
    week.advance(90)  # past the queue's wrap-up: routing closes it
    await week.settle()


async def _book(week: Week, rng: random.Random, holder: Principal, cid: str, patient_id: str) -> None:
    """Book the first free slot a day or two ahead with a demo provider; its outcome is recorded
    when the week passes its start."""
    from shared.scheduling.api import DEMO_PROVIDERS, BookingRequest, Scheduling, SlotQuery

    rt = week.runtime
    scheduling = Scheduling(rt.store, rt.bus, rt.clock)
    provider_id = rng.choice(sorted(DEMO_PROVIDERS))
    now = rt.clock.now()
    slots = await scheduling.free_slots(
        provider_id,
        SlotQuery.model_validate(
            {"from": now + timedelta(days=1), "to": now + timedelta(days=3), "maxItems": 20}
        ),
    )
    if not slots.slots:
        return
    slot = rng.choice(slots.slots)
    booked = await scheduling.book(
        holder,
        BookingRequest.model_validate(
            {
                "providerId": provider_id,
                "start": slot.start,
                "patientId": patient_id,
                "reason": "Demo visit",
                "conversationId": cid,
            }
        ),
        idempotency_key=None,
        correlation_id=f"demo-{cid}",
    )
    week.count("appointments booked")
    outcome = rng.choices(["fulfilled", "noshow", "arrived"], [6, 2, 1])[0]
    week.pending.append((slot.start, booked.item.id, outcome))
