"""Routing's promises under random agents, queues, presence, capacities and arrival orders.

The scenarios run through the reference `Dispatcher`; the strategies are module-level so the
store-backed service's tests can drive it with the same inputs and compare.

What `test_every_decision_keeps_routing_promises` asserts, replaying each `assign_all` decision by
decision against the state just before it:

* the conversation was waiting (never assigned twice, never to two agents at once);
* the agent serves its queue, is available or busy (never dnd, away or offline), has the units
  free (so never goes over capacity), speaks the language, is not excluded by three declines and
  is admitted by the queue's skill mode;
* an agent who let an offer of the conversation expire got it only if no other agent could take
  it (an expiry is not a decline: never an exclusion, only the last place);
* no eligible agent of that queue (among those it does not avoid, if any) had a strictly better
  skill fit;
* **serving order**: no conversation still waiting that comes *earlier* in the serving order (queue
  priority number, queue id, then conversation priority, longest waiting, id) could have gone to
  the same agent at that moment. So a lower-priority queue is never served by an agent who could
  have served a higher-priority queue's waiting conversation, and inside a queue priority then
  FIFO holds per agent;
* decisions come in serving order, and after the pass no waiting conversation has an eligible
  agent with room left (nothing is left behind that could have been assigned).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.routing.engine import (
    Seat,
    Waiting,
    best_agent,
    can_take,
    next_for_agent,
    presence_for_load,
    required_skills,
    seat_sort_key,
    skill_fit,
    unassignable_reason,
    waiting_key,
    waiting_sort_key,
)
from shared.routing.model import ROUTABLE, AssignmentMethod, Presence, QueueSettings, SkillMatch
from tests.routing.reference import Dispatcher

AGENT_IDS = ("a0", "a1", "a2", "a3", "a4", "a5")
QUEUE_IDS = ("q0", "q1", "q2")
SKILL_NAMES = ("cardio", "peds", "billing")
LANGUAGES = ("en", "en-US", "es", "es-MX", "pl")
BASE = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
ZONES = (
    UTC,
    ZoneInfo("Europe/Warsaw"),
    ZoneInfo("America/New_York"),
    timezone(timedelta(hours=5, minutes=30)),
)

# Sized so both routing test files run in well under 15 s on a CI runner.
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCENARIOS = settings(FAST, max_examples=120)
SPOT = settings(FAST, max_examples=60)

# Strategies --------------------------------------------------------------------------------------

offsets = st.integers(min_value=0, max_value=900)
moments = offsets.map(lambda s: BASE + timedelta(seconds=s))
maybe_moments = st.none() | moments
skill_maps = st.dictionaries(st.sampled_from(SKILL_NAMES), st.integers(1, 5), max_size=3)
languages = st.frozensets(st.sampled_from(LANGUAGES), min_size=1, max_size=2)
presences = st.sampled_from(list(Presence))
# Biased towards agents and conversations that match, so most passes make several decisions.
routable_mostly = st.sampled_from([Presence.AVAILABLE, Presence.AVAILABLE, Presence.BUSY, *Presence])
needs: st.SearchStrategy[dict[str, int]] = st.just({}) | skill_maps
# Any instant, any zone, down to microseconds: for the sort-key agreement tests.
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from(ZONES)
)


capacities = st.integers(1, 4)
# Strategies are built once here: building them inside composites costs more than the tests.
_used_shares = st.integers(0, 4)
_queue_settings = st.fixed_dictionaries(
    {
        "name": st.just("Q"),
        "priority": st.sampled_from([1, 2, 5]),
        "assignmentMethod": st.sampled_from(list(AssignmentMethod)),
        "skillMatch": st.sampled_from(list(SkillMatch)),
        "exactMatchTimeoutSeconds": st.sampled_from([0, 30, 300]),
        "requiredSkills": st.dictionaries(st.sampled_from(SKILL_NAMES), st.integers(1, 3), max_size=1),
    }
)
_queue_picks = st.integers(0, len(QUEUE_IDS) - 1)
_excluded = st.frozensets(st.sampled_from(AGENT_IDS), max_size=2)
_avoided = st.just(frozenset()) | st.frozensets(st.sampled_from(AGENT_IDS), max_size=2)
_priorities = st.integers(1, 3)
_units = st.integers(1, 2)
_spoken = st.sampled_from(("en", "en", *LANGUAGES))


@st.composite
def seats(draw: st.DrawFn, agent_id: str, when: st.SearchStrategy[datetime | None] = maybe_moments) -> Seat:
    """An agent with any presence and any load up to capacity."""
    capacity = draw(capacities)
    return Seat(
        agent_id=agent_id,
        presence=draw(presences),
        capacity=capacity,
        used=draw(_used_shares) % (capacity + 1),
        skills=draw(skill_maps),
        languages=draw(languages),
        last_assigned_at=draw(when),
        idle_since=draw(when),
    )


queue_settings = _queue_settings.map(QueueSettings.model_validate)


@st.composite
def waiting_items(
    draw: st.DrawFn, conversation_id: str, queue_ids: tuple[str, ...], enqueued_at: datetime
) -> Waiting:
    """A conversation in one of `queue_ids`, with any language, skills, exclusions and units."""
    return Waiting(
        conversation_id=conversation_id,
        queue_id=queue_ids[draw(_queue_picks) % len(queue_ids)],
        priority=draw(_priorities),
        enqueued_at=enqueued_at,
        language=draw(_spoken),
        skills=draw(needs),
        excluded=draw(_excluded),
        units=draw(_units),
        avoided=draw(_avoided),
    )


@dataclass(frozen=True)
class Op:
    """One event in a scenario: `kind` in arrive | redeliver | decline | expire | release |
    presence | assign; `advance` seconds pass before it; `pick` chooses among what exists then."""

    kind: str
    advance: int
    pick: int
    presence: Presence


ops = st.builds(
    Op,
    kind=st.sampled_from(
        [
            "arrive",
            "arrive",
            "arrive",
            "arrive",
            "redeliver",
            "decline",
            "expire",
            "release",
            "presence",
            "assign",
        ]
    ),
    advance=st.sampled_from([0, 0, 1, 15, 45, 400]),
    pick=st.integers(0, 1000),
    presence=routable_mostly,
)


@dataclass
class Scenario:
    queues: dict[str, QueueSettings]
    seats: list[tuple[Seat, Presence, frozenset[str] | None]]  # seat, chosen presence, queues served
    ops: list[Op]
    arrivals: list[Waiting]  # conversation c<n> as it arrives at op n; enqueued_at is set then


_queue_id_sets = st.lists(st.sampled_from(QUEUE_IDS), min_size=1, unique=True)
_agent_id_lists = st.lists(st.sampled_from(AGENT_IDS), min_size=1, max_size=5, unique=True)
_memberships = st.none() | st.frozensets(_queue_picks, min_size=1)
_op_lists = st.lists(ops, min_size=1, max_size=30)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    queue_ids = tuple(draw(_queue_id_sets))
    queues = {queue_id: draw(queue_settings) for queue_id in queue_ids}
    agents = draw(_agent_id_lists)
    agent_seats = []
    for agent_id in agents:
        served = draw(_memberships)
        agent_seats.append(
            (
                draw(seats(agent_id)),
                draw(routable_mostly),
                None if served is None else frozenset(queue_ids[i % len(queue_ids)] for i in served),
            )
        )
    scenario_ops = draw(_op_lists)
    arrivals = [draw(waiting_items(f"c{n:02d}", queue_ids, BASE)) for n in range(len(scenario_ops))]
    return Scenario(queues, agent_seats, scenario_ops, arrivals)


# The replay check --------------------------------------------------------------------------------


def serving_key(dispatcher: Dispatcher, item: Waiting) -> tuple[Any, ...]:
    return (dispatcher.queues[item.queue_id].priority, item.queue_id, *waiting_key(item))


def fit_of(dispatcher: Dispatcher, seat: Seat, item: Waiting, now: datetime) -> float | None:
    """Eligibility from first principles (not `best_agent`): membership, `can_take`, skill mode."""
    if not dispatcher.serves(seat.agent_id, item.queue_id) or not can_take(seat, item):
        return None
    queue = dispatcher.queues[item.queue_id]
    waited = (now - item.enqueued_at).total_seconds()
    return skill_fit(
        seat.skills,
        required_skills(queue, item),
        queue.skill_match,
        waited,
        queue.exact_match_timeout_seconds,
    )


def check_pass(
    dispatcher: Dispatcher,
    seats_before: dict[str, Seat],
    waiting_before: dict[str, Waiting],
    decisions: list[tuple[str, str]],
    now: datetime,
) -> None:
    seats = dict(seats_before)
    pending = dict(waiting_before)
    last_key: tuple[Any, ...] | None = None
    for conversation_id, agent_id in decisions:
        assert conversation_id in pending, f"{conversation_id} assigned but not waiting"
        item = pending.pop(conversation_id)
        seat = seats[agent_id]
        key = serving_key(dispatcher, item)
        assert last_key is None or last_key < key, "decisions follow the serving order"
        last_key = key

        assert seat.presence in ROUTABLE, f"{agent_id} is {seat.presence}"
        assert agent_id not in item.excluded
        assert seat.free >= item.units, "never over capacity"
        fit = fit_of(dispatcher, seat, item, now)
        assert fit is not None, "the agent was eligible"
        eligible = {
            s.agent_id: f for s in seats.values() if (f := fit_of(dispatcher, s, item, now)) is not None
        }
        preferred = {a: f for a, f in eligible.items() if a not in item.avoided} or eligible
        assert agent_id in preferred, "an agent who let it expire only when nobody else could take it"
        assert fit == max(preferred.values()), "no eligible agent fit better"
        for other in pending.values():
            if serving_key(dispatcher, other) < key:
                assert fit_of(dispatcher, seat, other, now) is None, (
                    f"{agent_id} took {conversation_id} while {other.conversation_id} came first and fit"
                )

        used = seat.used + item.units
        seats[agent_id] = replace(
            seat,
            used=used,
            last_assigned_at=now,
            presence=presence_for_load(dispatcher.chosen[agent_id], used, seat.capacity),
        )

    assert seats == dispatcher.seats, "the dispatcher applied exactly these decisions"
    assert pending == dispatcher.waiting
    for item in pending.values():
        for seat in seats.values():
            assert fit_of(dispatcher, seat, item, now) is None, (
                f"{item.conversation_id} left waiting although {seat.agent_id} could take it"
            )


def check_state(dispatcher: Dispatcher) -> None:
    for seat in dispatcher.seats.values():
        assert 0 <= seat.used <= seat.capacity
        assert seat.presence == presence_for_load(dispatcher.chosen[seat.agent_id], seat.used, seat.capacity)
        held = sum(units for agent, units in dispatcher.assigned.values() if agent == seat.agent_id)
        assert held <= seat.used
    assert not dispatcher.waiting.keys() & dispatcher.assigned.keys(), "waiting and assigned at once"


# Properties --------------------------------------------------------------------------------------


@SCENARIOS
@given(scenarios())
def test_every_decision_keeps_routing_promises(scenario: Scenario) -> None:
    dispatcher = Dispatcher(queues=scenario.queues)
    for seat, chosen, queues in scenario.seats:
        dispatcher.update_seat(seat, chosen=chosen, queues=queues)
    now = BASE + timedelta(seconds=1000)
    items: dict[str, Waiting] = {}
    declines: dict[tuple[str, str], int] = {}
    for number, op in enumerate(scenario.ops):
        now += timedelta(seconds=op.advance)
        if op.kind == "arrive":
            item = replace(scenario.arrivals[number], enqueued_at=now)
            items[item.conversation_id] = item
            assert dispatcher.add_waiting(item)
        elif op.kind == "redeliver" and items:
            again = sorted(items)[op.pick % len(items)]
            before = (dict(dispatcher.waiting), dict(dispatcher.assigned))
            assert not dispatcher.add_waiting(items[again]), "a redelivered conversation is queued once"
            assert (dispatcher.waiting, dispatcher.assigned) == before
        elif op.kind in ("decline", "expire", "release") and dispatcher.assigned:
            conversation_id = sorted(dispatcher.assigned)[op.pick % len(dispatcher.assigned)]
            agent_id, _ = dispatcher.assigned[conversation_id]
            dispatcher.release(conversation_id, now)
            if op.kind == "release":
                del items[conversation_id]
            elif op.kind == "expire":
                item = items[conversation_id]
                items[conversation_id] = replace(item, avoided=item.avoided | {agent_id})
                assert dispatcher.add_waiting(items[conversation_id])
            else:
                declines[conversation_id, agent_id] = declines.get((conversation_id, agent_id), 0) + 1
                item = items[conversation_id]
                if declines[conversation_id, agent_id] >= 3:
                    item = replace(item, excluded=item.excluded | {agent_id})
                items[conversation_id] = item
                assert dispatcher.add_waiting(item)
        elif op.kind == "presence":
            agent_id = sorted(dispatcher.seats)[op.pick % len(dispatcher.seats)]
            dispatcher.update_seat(dispatcher.seats[agent_id], chosen=op.presence)
        elif op.kind == "assign":
            seats_before, waiting_before = dict(dispatcher.seats), dict(dispatcher.waiting)
            decisions = dispatcher.assign_all(now)
            check_pass(dispatcher, seats_before, waiting_before, decisions, now)
        check_state(dispatcher)
    seats_before, waiting_before = dict(dispatcher.seats), dict(dispatcher.waiting)
    check_pass(dispatcher, seats_before, waiting_before, dispatcher.assign_all(now), now)
    check_state(dispatcher)


@SPOT
@given(scenarios(), st.sampled_from(AGENT_IDS), offsets)
def test_a_freed_agent_gets_what_the_dispatcher_would_give_it_first(
    scenario: Scenario, agent_id: str, wait: int
) -> None:
    """`next_for_agent` (the agent-side trigger) and `assign_all` (the queue-side one) agree when
    the agent is the only one in the room."""
    seat, chosen, _ = scenario.seats[0]
    seat = replace(seat, agent_id=agent_id)
    now = BASE + timedelta(seconds=1000 + wait)
    dispatcher = Dispatcher(queues=scenario.queues)
    seat = dispatcher.update_seat(seat, chosen=chosen)
    for op, item in zip(scenario.ops, scenario.arrivals, strict=True):
        dispatcher.add_waiting(replace(item, enqueued_at=BASE + timedelta(seconds=op.pick)))
    by_queue = [
        (settings, [item for item in dispatcher.waiting.values() if item.queue_id == queue_id])
        for queue_id, settings in dispatcher.queues.items()
    ]
    expected = next_for_agent(seat, by_queue, now)
    decisions = dispatcher.assign_all(now)
    if expected is None:
        assert decisions == []
    else:
        assert decisions[0] == (expected.conversation_id, agent_id)


_any_times = st.sampled_from([BASE, BASE.astimezone(ZONES[1]), BASE.astimezone(ZONES[2])]) | instants
_maybe_any_times = st.none() | _any_times
_sort_ids = st.lists(
    st.sampled_from((*AGENT_IDS, "b", "b0", "B", "a0.x", "x-1")), min_size=1, max_size=8, unique=True
)
_queue_entries = st.lists(
    st.tuples(st.integers(0, 999), _any_times, st.sampled_from(["x", "x-1", "x.2", "Y", "y"])),
    min_size=1,
    max_size=12,
)


@st.composite
def rooms(draw: st.DrawFn, when: st.SearchStrategy[datetime | None] = maybe_moments) -> list[Seat]:
    """Seats with distinct agent ids."""
    return [draw(seats(agent_id, when)) for agent_id in draw(_sort_ids)]


@FAST
@given(_queue_entries)
def test_the_waiting_sort_key_orders_like_the_waiting_order(entries: list[tuple[int, datetime, str]]) -> None:
    items = [
        Waiting(f"{prefix}{n}", "q", priority, enqueued_at, "en", {})
        for n, (priority, enqueued_at, prefix) in enumerate(entries)
    ]
    by_key = [item.conversation_id for item in sorted(items, key=waiting_key)]
    by_string = [item.conversation_id for item in sorted(items, key=waiting_sort_key)]
    assert by_key == by_string
    widths = {len(waiting_sort_key(item)) - len(item.conversation_id) for item in items}
    assert len(widths) == 1, "fixed width"


@FAST
@given(st.sampled_from(list(AssignmentMethod)), rooms(_maybe_any_times))
def test_the_seat_sort_key_orders_like_best_agent(method: AssignmentMethod, room: list[Seat]) -> None:
    for seat in room:
        assert (seat_sort_key(method, seat) is None) == (seat.presence not in ROUTABLE or seat.free == 0)
    remaining = [seat for seat in room if seat_sort_key(method, seat) is not None]
    by_string = sorted(remaining, key=lambda seat: seat_sort_key(method, seat) or "")
    # Anyone can take this one, and every fit is perfect: only the method orders the seats.
    anything = Waiting("c", "q", 1, BASE, "", {})
    queue = QueueSettings.model_validate({"name": "Q", "assignmentMethod": method})
    picked = []
    while remaining:
        best = best_agent(anything, queue, remaining, BASE)
        assert best is not None
        picked.append(best)
        remaining.remove(best)
    assert [s.agent_id for s in picked] == [s.agent_id for s in by_string]


@FAST
@given(queue_settings, waiting_items("c", ("q",), BASE), rooms(), offsets)
def test_best_agent_is_the_best_skill_fit_then_the_first_by_sort_key(
    queue: QueueSettings, item: Waiting, room: list[Seat], wait: int
) -> None:
    """`best_agent` against an oracle built from the other public pieces: among the seats that
    `can_take` the conversation and whose `skill_fit` is not None, agents it avoids come last, then
    the highest fit wins and a tie goes to the smallest `seat_sort_key`."""
    now = BASE + timedelta(seconds=wait)
    required = required_skills(queue, item)
    scored = [
        (
            seat.agent_id in item.avoided,
            -fit,
            seat_sort_key(queue.assignment_method, seat) or "",
            seat.agent_id,
        )
        for seat in room
        if can_take(seat, item)
        and (
            fit := skill_fit(
                seat.skills, required, queue.skill_match, wait, queue.exact_match_timeout_seconds
            )
        )
        is not None
    ]
    chosen = best_agent(item, queue, room, now)
    assert (chosen.agent_id if chosen else None) == (min(scored)[3] if scored else None)


@FAST
@given(queue_settings, waiting_items("c", ("q",), BASE), rooms())
def test_unassignable_means_no_member_could_ever_take_it_whatever_their_presence_and_load(
    queue: QueueSettings, item: Waiting, room: list[Seat]
) -> None:
    """`unassignable_reason` is None exactly when some member, once available with nothing to
    do, would be offered the conversation (after any exact-match timeout has run out); presence
    and load never change the answer."""
    reason = unassignable_reason(item, queue, room)
    idle = [replace(seat, presence=Presence.AVAILABLE, used=0) for seat in room]
    later = BASE + timedelta(days=1)
    assert (reason is None) == (best_agent(item, queue, idle, later) is not None)
    assert unassignable_reason(item, queue, idle) == reason
