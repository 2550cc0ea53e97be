"""How an escalated conversation finds a queue and an agent (Dynamics 365 unified routing, and a bit more).

Everything here is pure: no store, no clock, no logging. The store-backed assignment service loads
small candidate sets and asks these functions; the tests' reference model (tests/routing/reference.py,
`Dispatcher`) runs the same rules over plain dictionaries and is the executable specification the
property and differential tests check.

Classification
    Rules are tried in order and the first match wins, else the fallback queue. A condition lists
    attributes; each listed attribute must match, a list matches any of its values, and an absent
    or empty list constrains nothing. Specialty compares case-insensitively. Language compares as a
    BCP 47 *basic filter* (RFC 4647): rule ``es`` matches ``es``, ``es-MX`` and ``ES_mx``; rule ``es-MX``
    does not match plain ``es``. Context values compare as strings, so ``3`` and ``"3"`` are equal.

Which conversation first
    Queues by priority number (smaller first, ties by queue id); inside a queue by conversation
    priority (higher first), then longest waiting, then conversation id (`waiting_key`).

Who may take it (`can_take` + `skill_fit`)
    Presence available or busy, enough free units, speaks the language (exact tag or the same
    primary subtag, either way round: an ``en-US`` agent speaks ``en`` and ``en-GB``), not excluded by
    three declines, and the skills the queue's skill-match mode asks for.

Skill fit (`skill_fit`)
    The required skills are the queue's `requiredSkills` and the conversation's own, the higher
    level winning. Score = mean over required skills of ``min(agent level, required level) /
    required level``; a missing skill counts 0. So 1.0 is "every skill at or above the level"
    (over-qualification earns nothing extra, so it cannot starve lower-level agents of work), a
    missing skill costs a whole share and a skill one level short costs only a fraction of one.
    ``exact`` admits only 1.0; ``closest`` admits everyone and ranks by score;
    ``exact-then-closest`` is exact until the conversation has waited `exactMatchTimeoutSeconds`,
    then closest.

Who is best (`best_agent`)
    An agent who let an offer of this very conversation expire comes after every other eligible
    agent (so a conversation is not offered again and again to someone away from their desk while
    another agent could take it; alone, they still get it: an expiry is not a decline). Then
    higher skill fit, then the queue's assignment method:

    * highest-capacity: most free units, then earliest last assignment (None first), then agent id;
    * round-robin: earliest last assignment (None first), then agent id;
    * most-idle: agents with no work first, longest idle first (never had work = most idle), then
      agents with work by earliest last assignment, then agent id.

    `seat_sort_key` encodes the same order as one ascending string for the store's index.

Unassignable (`unassignable_reason`)
    A waiting conversation no member of its queue may ever be offered as things stand: each one
    is excluded by declines, does not speak its language, has less capacity than its units or,
    under exact matching only, lacks a required skill. Presence and load are not part of it: a
    conversation whose possible agents are busy or offline is waiting, not unassignable.

Presence by load (`presence_for_load`)
    Load can only raise presence along available < busy < dnd, never lower it below what the
    agent chose by hand: full → dnd, partial → at least busy, empty → the agent's own choice. A
    hand-set dnd, away or offline is never changed by load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from shared.kernel.times import stamp
from shared.routing.model import (
    ROUTABLE,
    URGENCY_PRIORITY,
    AssignmentMethod,
    OperatingHours,
    Presence,
    QueueSettings,
    RoutingAttributes,
    RoutingRules,
    RuleCondition,
    SkillMatch,
)

# Fixed widths of the sort keys: a key is compared as a plain string by the store.
_UNITS_WIDTH = 3
_MAX_UNITS = 10**_UNITS_WIDTH - 1
_NO_TIME = "0000-00-00T00:00:00.000Z"  # before every stamp
_WEEKDAYS: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
)


@dataclass(frozen=True, slots=True)
class Seat:
    """One agent as routing sees it: presence after load, capacity in units, skills, languages."""

    agent_id: str
    presence: Presence
    capacity: int
    used: int
    skills: Mapping[str, int]
    languages: frozenset[str]
    # Round robin: the earliest (None first) gets the next conversation.
    last_assigned_at: datetime | None
    # Most idle: when the agent last had no work; None = never had work, the most idle of all.
    idle_since: datetime | None

    @property
    def free(self) -> int:
        return max(self.capacity - self.used, 0)


@dataclass(frozen=True, slots=True)
class Waiting:
    """One conversation waiting in a queue."""

    conversation_id: str
    queue_id: str
    priority: int  # higher first (URGENCY_PRIORITY)
    enqueued_at: datetime  # entered this queue
    language: str
    skills: Mapping[str, int]  # from classification; merged with the queue's by `required_skills`
    excluded: frozenset[str] = frozenset()  # agents who declined it three times
    units: int = 1
    avoided: frozenset[str] = frozenset()  # agents who let an offer of it expire: ranked last


@dataclass(frozen=True, slots=True)
class Placement:
    """Where classification puts a conversation."""

    queue_id: str
    skills: dict[str, int]
    priority: int
    rule_index: int | None  # None = the fallback queue


# Classification ----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _tag(language: str) -> str:
    return language.strip().replace("_", "-").casefold()


def _primary(tag: str) -> str:
    return tag.split("-", 1)[0]


def _language_matches(wanted: str, language: str) -> bool:
    wanted, language = _tag(wanted), _tag(language)
    return language == wanted or language.startswith(wanted + "-")


def _matches(when: RuleCondition, attrs: RoutingAttributes) -> bool:
    if when.urgency and attrs.urgency not in when.urgency:
        return False
    if when.specialty:
        specialty = (attrs.specialty or "").strip().casefold()
        if not specialty or specialty not in {value.strip().casefold() for value in when.specialty}:
            return False
    if when.language and not any(_language_matches(value, attrs.language) for value in when.language):
        return False
    if when.context:
        for key, expected in when.context.items():
            if key not in attrs.context or str(attrs.context[key]) != str(expected):
                return False
    return True


def classify(rules: RoutingRules, attrs: RoutingAttributes) -> Placement:
    """The queue, skills and priority for a conversation: the first matching rule, else the fallback
    queue with no extra skills. Priority comes from the urgency alone."""
    priority = URGENCY_PRIORITY[attrs.urgency]
    for index, rule in enumerate(rules.rules):
        if _matches(rule.when, attrs):
            return Placement(rule.queue_id, dict(rule.skills), priority, index)
    return Placement(rules.fallback_queue_id, {}, priority, None)


# Eligibility and fit -----------------------------------------------------------------------------


def required_skills(queue: QueueSettings, item: Waiting) -> dict[str, int]:
    """The skills a conversation needs: the queue's and its own, the higher level winning."""
    merged = dict(queue.required_skills)
    for name, level in item.skills.items():
        if level > merged.get(name, 0):
            merged[name] = level
    return merged


def skill_fit(
    agent_skills: Mapping[str, int],
    required: Mapping[str, int],
    mode: SkillMatch,
    waited_seconds: float,
    exact_timeout: int,
) -> float | None:
    """How well an agent's skills fit, 0.0-1.0 (1.0 = every skill at or above its level), or None
    when the mode makes the agent ineligible. See the module docstring for the formula."""
    if not required:
        return 1.0
    # Exact fractions, so two agents whose coverage is equal compare equal however it was reached.
    covered = sum(Fraction(min(agent_skills.get(name, 0), level), level) for name, level in required.items())
    score = float(covered / len(required))
    closest = mode is SkillMatch.CLOSEST or (
        mode is SkillMatch.EXACT_THEN_CLOSEST and waited_seconds >= exact_timeout
    )
    if closest or score >= 1.0:
        return score
    return None


def speaks(seat: Seat, language: str) -> bool:
    """True when the agent speaks the language: the same tag, or the same primary subtag either way
    round (``en-US`` speaks ``en`` and ``en`` speaks ``en-US``); an empty language asks for nothing."""
    wanted = _tag(language)
    if not wanted:
        return True
    primary = _primary(wanted)
    return any(_primary(_tag(spoken)) == primary for spoken in seat.languages)


def can_take(seat: Seat, item: Waiting) -> bool:
    """True when the agent may be offered the conversation, skills aside: routable presence, enough
    free units, speaks its language, and not excluded by three declines."""
    return (
        seat.presence in ROUTABLE
        and seat.free >= item.units
        and seat.agent_id not in item.excluded
        and speaks(seat, item.language)
    )


# Reasons a waiting conversation is unassignable, in the order each agent is checked.
DECLINED = "all-agents-declined"
LANGUAGE = "no-agent-with-language"
CAPACITY = "no-agent-with-capacity"
SKILLS = "no-agent-with-skills"
NO_AGENTS = "no-agents"
MIXED = "no-eligible-agent"


def _structural_misfit(
    seat: Seat, item: Waiting, queue: QueueSettings, required: Mapping[str, int]
) -> str | None:
    if seat.agent_id in item.excluded:
        return DECLINED
    if not speaks(seat, item.language):
        return LANGUAGE
    if seat.capacity < item.units:
        return CAPACITY
    if (
        queue.skill_match is SkillMatch.EXACT
        and skill_fit(seat.skills, required, queue.skill_match, 0, 0) is None
    ):
        return SKILLS
    return None


def unassignable_reason(item: Waiting, queue: QueueSettings, members: Iterable[Seat]) -> str | None:
    """Why no agent of the queue may ever be offered this conversation as things stand, or None.

    Structural impossibility only: presence and load are ignored, because an agent who is busy,
    away or offline now may take it later ("nobody available right now" is waiting, not
    unassignable). A member agent could take it when they are not excluded by three declines,
    speak its language, have the capacity for the queue's units, and, under exact skill matching,
    have every required skill at its level. Closest matching admits any skills, and
    exact-then-closest relaxes to closest on its own at the timeout, so under those modes skills
    never make a conversation unassignable. Only a change of declines (never undone), of an
    agent's profile, of the queue or of the conversation's queue changes the answer.

    The reason when every member fails: `all-agents-declined`, `no-agent-with-language`,
    `no-agent-with-capacity` or `no-agent-with-skills` when they all fail the same check (in that
    order), `no-eligible-agent` when they fail different ones, `no-agents` when nobody serves
    the queue."""
    required = required_skills(queue, item)
    reasons = set()
    for seat in members:
        misfit = _structural_misfit(seat, item, queue, required)
        if misfit is None:
            return None
        reasons.add(misfit)
    if not reasons:
        return NO_AGENTS
    return reasons.pop() if len(reasons) == 1 else MIXED


def _waited(item: Waiting, now: datetime) -> float:
    return (_utc(now) - _utc(item.enqueued_at)).total_seconds()


def _fit(
    seat: Seat, item: Waiting, queue: QueueSettings, required: Mapping[str, int], waited: float
) -> float | None:
    if not can_take(seat, item):
        return None
    return skill_fit(seat.skills, required, queue.skill_match, waited, queue.exact_match_timeout_seconds)


# Ranking -----------------------------------------------------------------------------------------


def _utc(when: datetime) -> datetime:
    # Naive times are read as UTC: that is how the store writes them, and local time would make
    # the order depend on the machine.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _none_first(when: datetime | None) -> tuple[int, datetime]:
    return (0, datetime.min.replace(tzinfo=UTC)) if when is None else (1, _utc(when))


def _method_rank(method: AssignmentMethod, seat: Seat) -> tuple[object, ...]:
    if method is AssignmentMethod.HIGHEST_CAPACITY:
        return (-seat.free, _none_first(seat.last_assigned_at), seat.agent_id)
    if method is AssignmentMethod.ROUND_ROBIN:
        return (_none_first(seat.last_assigned_at), seat.agent_id)
    if seat.used == 0:
        return (0, _none_first(seat.idle_since), seat.agent_id)
    return (1, _none_first(seat.last_assigned_at), seat.agent_id)


def best_agent(item: Waiting, queue: QueueSettings, seats: Iterable[Seat], now: datetime) -> Seat | None:
    """The agent the conversation should be offered to, or None when nobody eligible is free.
    Agents it avoids last, then better skill fit, then the queue's assignment method;
    deterministic for equal inputs."""
    required = required_skills(queue, item)
    waited = _waited(item, now)
    best: Seat | None = None
    best_rank: tuple[object, ...] = ()
    for seat in seats:
        fit = _fit(seat, item, queue, required, waited)
        if fit is None:
            continue
        rank = (seat.agent_id in item.avoided, -fit, *_method_rank(queue.assignment_method, seat))
        if best is None or rank < best_rank:
            best, best_rank = seat, rank
    return best


def waiting_key(item: Waiting) -> tuple[int, datetime, str]:
    """The serving order inside a queue: higher priority, then longest waiting, then id."""
    return (-item.priority, _utc(item.enqueued_at), item.conversation_id)


def _queue_order(entry: tuple[QueueSettings, Sequence[Waiting]]) -> tuple[int, str]:
    settings, items = entry
    return (settings.priority, items[0].queue_id if items else "")


def next_for_agent(
    seat: Seat, queues: Sequence[tuple[QueueSettings, Sequence[Waiting]]], now: datetime
) -> Waiting | None:
    """The conversation an agent who just freed capacity (or came online) should get: queues by
    priority number (ties by queue id), inside a queue in `waiting_key` order, the first one the
    agent can take and whose skill mode admits the agent.

    A closest-mode queue hands the agent its head conversation even when the fit is not perfect,
    rather than skipping ahead to one the agent fits better: waiting order is the promise, and a
    better-fitting free agent would already have been chosen when the conversation arrived."""
    for settings, items in sorted(queues, key=_queue_order):
        for item in sorted(items, key=waiting_key):
            if _fit(seat, item, settings, required_skills(settings, item), _waited(item, now)) is not None:
                return item
    return None


# Presence, hours and overflow --------------------------------------------------------------------

_LOAD_ORDER = (Presence.AVAILABLE, Presence.BUSY, Presence.DND)


def presence_for_load(chosen: Presence, used: int, capacity: int) -> Presence:
    """What routing and supervisors see: the agent's own choice raised by load (full → dnd,
    partial → at least busy), never lowered below it. A hand-set dnd, away or offline stays."""
    if chosen not in ROUTABLE:
        return chosen
    by_load = Presence.DND if used >= capacity else Presence.BUSY if used > 0 else Presence.AVAILABLE
    return max(chosen, by_load, key=_LOAD_ORDER.index)


def is_open(hours: OperatingHours | None, now: datetime) -> bool:
    """True when `now` falls in one of the day's ``[start, end)`` ranges on the queue's local wall
    clock; None = always open. Comparing wall-clock times keeps ``08:00`` meaning 08:00 across DST:
    a range inside the skipped spring hour is never open that night, and one inside the repeated
    autumn hour is open for both passes."""
    if hours is None:
        return True
    local = _utc(now).astimezone(ZoneInfo(hours.time_zone))
    clock = f"{local.hour:02d}:{local.minute:02d}"
    ranges = hours.weekly_hours.get(_WEEKDAYS[local.weekday()], [])
    # "HH:MM" strings order like times, and "24:00" sorts after every real minute.
    return any(start <= clock < end for start, end in ranges)


def overflow_on_arrival(queue: QueueSettings, waiting_count: int, now: datetime) -> bool:
    """True when a conversation arriving now must overflow instead of waiting: the queue is closed,
    or already holds `maxWaiting` conversations (`waiting_count` excludes the arriving one)."""
    limit = queue.overflow.max_waiting
    return (limit is not None and waiting_count >= limit) or not is_open(queue.operating_hours, now)


def overflow_while_waiting(queue: QueueSettings, item: Waiting, now: datetime) -> bool:
    """True once the conversation has waited the queue's `maxWaitSeconds` (at its deadline)."""
    due = overflow_deadline(queue, item)
    return due is not None and _utc(now) >= due


# Deadlines of the timed rules (scheduled routing messages fire them) -------------------------------


def overflow_deadline(queue: QueueSettings, item: Waiting) -> datetime | None:
    """When the conversation overflows by waiting, or None if the queue has no `maxWaitSeconds`."""
    limit = queue.overflow.max_wait_seconds
    return None if limit is None else _utc(item.enqueued_at) + timedelta(seconds=limit)


def exact_match_deadline(queue: QueueSettings, item: Waiting) -> datetime | None:
    """When exact-then-closest matching starts admitting the closest agents for this conversation;
    None if the queue does not relax its matching or the conversation needs no skill."""
    if queue.skill_match is not SkillMatch.EXACT_THEN_CLOSEST or not required_skills(queue, item):
        return None
    return _utc(item.enqueued_at) + timedelta(seconds=queue.exact_match_timeout_seconds)


# Sort keys for the store's index -----------------------------------------------------------------


def _time_key(when: datetime | None) -> str:
    return _NO_TIME if when is None else stamp(when)


def _units_key(units: int) -> str:
    if not 0 <= units <= _MAX_UNITS:
        raise ValueError(f"must be between 0 and {_MAX_UNITS} to fit the sort key")
    return f"{_MAX_UNITS - units:0{_UNITS_WIDTH}d}"


def seat_sort_key(method: AssignmentMethod, seat: Seat) -> str | None:
    """An ascending string under which a queue's seats sort in `best_agent` order for `method`
    (skills and language aside), or None when the seat can take no work at all and should be left
    out of the index. Fixed-width fields, agent id last."""
    if seat.presence not in ROUTABLE or seat.free <= 0:
        return None
    if method is AssignmentMethod.HIGHEST_CAPACITY:
        return f"s|{_units_key(seat.free)}|{_time_key(seat.last_assigned_at)}|{seat.agent_id}"
    if method is AssignmentMethod.ROUND_ROBIN:
        return f"s|{_time_key(seat.last_assigned_at)}|{seat.agent_id}"
    if seat.used == 0:
        return f"s|0|{_time_key(seat.idle_since)}|{seat.agent_id}"
    return f"s|1|{_time_key(seat.last_assigned_at)}|{seat.agent_id}"


def waiting_sort_key(item: Waiting) -> str:
    """An ascending string in `waiting_key` order: priority (0-999), enqueue time in UTC, id."""
    return f"w|{_units_key(item.priority)}|{_time_key(item.enqueued_at)}|{item.conversation_id}"
