"""The routing engine by example: how a queue is picked and an agent chosen, each rule once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.routing.engine import (
    Placement,
    Seat,
    Waiting,
    best_agent,
    can_take,
    classify,
    exact_match_deadline,
    is_open,
    next_for_agent,
    overflow_deadline,
    overflow_on_arrival,
    overflow_while_waiting,
    presence_for_load,
    required_skills,
    seat_sort_key,
    skill_fit,
    speaks,
    waiting_key,
    waiting_sort_key,
)
from shared.routing.model import (
    AssignmentMethod,
    OperatingHours,
    Presence,
    QueueSettings,
    RoutingAttributes,
    RoutingRules,
    SkillMatch,
)
from tests.routing.reference import Dispatcher

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seat(agent_id: str, **changes: Any) -> Seat:
    values: dict[str, Any] = {
        "agent_id": agent_id,
        "presence": Presence.AVAILABLE,
        "capacity": 3,
        "used": 0,
        "skills": {},
        "languages": frozenset({"en"}),
        "last_assigned_at": None,
        "idle_since": None,
    }
    values.update(changes)
    return Seat(**values)


def waiting(conversation_id: str = "c1", **changes: Any) -> Waiting:
    values: dict[str, Any] = {
        "conversation_id": conversation_id,
        "queue_id": "general",
        "priority": 1,
        "enqueued_at": T0,
        "language": "en",
        "skills": {},
    }
    values.update(changes)
    return Waiting(**values)


def queue(**fields: Any) -> QueueSettings:
    return QueueSettings.model_validate({"name": "Q", **fields})


def rules(*rule_list: dict[str, Any], fallback: str = "general") -> RoutingRules:
    return RoutingRules.model_validate({"rules": list(rule_list), "fallbackQueueId": fallback})


def attrs(**fields: Any) -> RoutingAttributes:
    return RoutingAttributes.model_validate(fields)


# Classification ----------------------------------------------------------------------------------


def test_the_first_matching_rule_wins() -> None:
    table = rules(
        {"when": {"urgency": ["emergency"]}, "queueId": "triage", "skills": {"nursing": 3}},
        {"when": {"specialty": ["cardiology"]}, "queueId": "cardio"},
        {"when": {}, "queueId": "catch-all"},
    )
    assert classify(table, attrs(urgency="emergency", specialty="cardiology")) == Placement(
        "triage", {"nursing": 3}, 3, 0
    )
    assert classify(table, attrs(urgency="urgent", specialty="Cardiology")) == Placement("cardio", {}, 2, 1)
    assert classify(table, attrs()) == Placement("catch-all", {}, 1, 2)


def test_no_matching_rule_lands_in_the_fallback_queue_with_no_extra_skills() -> None:
    table = rules({"when": {"specialty": ["dermatology"]}, "queueId": "derm", "skills": {"derm": 2}})
    assert classify(table, attrs(specialty="cardiology", urgency="urgent")) == Placement(
        "general", {}, 2, None
    )
    assert classify(table, attrs()) == Placement("general", {}, 1, None), "no specialty never matches one"
    assert classify(rules(), attrs()) == Placement("general", {}, 1, None)


def test_a_list_condition_matches_any_of_its_values_and_an_empty_list_constrains_nothing() -> None:
    table = rules(
        {"when": {"urgency": ["urgent", "emergency"], "specialty": []}, "queueId": "fast"},
    )
    assert classify(table, attrs(urgency="urgent")).queue_id == "fast"
    assert classify(table, attrs(urgency="emergency", specialty="x")).queue_id == "fast"
    assert classify(table, attrs(urgency="routine")).queue_id == "general"


@pytest.mark.parametrize(
    ("rule_language", "patient_language", "matches"),
    [
        ("es", "es", True),
        ("es", "es-MX", True),
        ("ES", "es_mx", True),
        ("es-MX", "es-mx", True),
        ("es-MX", "es", False),
        ("es-MX", "es-ES", False),
        ("es", "est", False),
        ("en", "es", False),
    ],
)
def test_language_rules_match_the_primary_subtag(
    rule_language: str, patient_language: str, matches: bool
) -> None:
    table = rules({"when": {"language": ["pl", rule_language]}, "queueId": "lang"})
    assert (classify(table, attrs(language=patient_language)).queue_id == "lang") is matches


def test_context_conditions_need_every_key_equal_as_strings() -> None:
    table = rules({"when": {"context": {"plan": "gold", "tier": 3}}, "queueId": "vip"})
    assert classify(table, attrs(context={"plan": "gold", "tier": "3", "extra": 1})).queue_id == "vip"
    assert classify(table, attrs(context={"plan": "gold", "tier": 3})).queue_id == "vip"
    assert classify(table, attrs(context={"plan": "gold"})).queue_id == "general"
    assert classify(table, attrs(context={"plan": "Gold", "tier": 3})).queue_id == "general"


def test_specialty_compares_case_insensitively() -> None:
    table = rules({"when": {"specialty": ["Cardiology"]}, "queueId": "cardio"})
    assert classify(table, attrs(specialty=" cardiology")).queue_id == "cardio"


# Skills --------------------------------------------------------------------------------------------


def test_required_skills_merge_the_queue_and_the_conversation_keeping_the_higher_level() -> None:
    settings = queue(requiredSkills={"cardio": 2, "billing": 1})
    assert required_skills(settings, waiting(skills={"cardio": 4, "spanish": 1})) == {
        "cardio": 4,
        "billing": 1,
        "spanish": 1,
    }
    assert required_skills(queue(requiredSkills={"cardio": 5}), waiting(skills={"cardio": 2})) == {
        "cardio": 5
    }


def test_exact_skill_match_needs_every_skill_at_or_above_its_level() -> None:
    need = {"cardio": 3, "billing": 1}
    assert skill_fit({"cardio": 3, "billing": 2}, need, SkillMatch.EXACT, 10_000, 60) == 1.0
    assert skill_fit({"cardio": 9, "billing": 9, "x": 1}, need, SkillMatch.EXACT, 0, 60) == 1.0
    assert skill_fit({"cardio": 2, "billing": 1}, need, SkillMatch.EXACT, 10_000, 60) is None
    assert skill_fit({"cardio": 3}, need, SkillMatch.EXACT, 10_000, 60) is None
    assert skill_fit({}, {}, SkillMatch.EXACT, 0, 60) == 1.0


def test_closest_skill_match_admits_everyone_and_ranks_by_coverage() -> None:
    need = {"cardio": 4, "billing": 2}
    perfect = skill_fit({"cardio": 4, "billing": 2}, need, SkillMatch.CLOSEST, 0, 60)
    one_short = skill_fit({"cardio": 3, "billing": 2}, need, SkillMatch.CLOSEST, 0, 60)
    half_level = skill_fit({"cardio": 2, "billing": 2}, need, SkillMatch.CLOSEST, 0, 60)
    missing = skill_fit({"billing": 2}, need, SkillMatch.CLOSEST, 0, 60)
    nothing = skill_fit({}, need, SkillMatch.CLOSEST, 0, 60)
    # (3/4 + 2/2) / 2, (2/4 + 2/2) / 2, (0 + 2/2) / 2: a missing skill costs more than a level short.
    assert [perfect, one_short, half_level, missing, nothing] == [1.0, 0.875, 0.75, 0.5, 0.0]
    assert skill_fit({"other": 1}, {}, SkillMatch.CLOSEST, 0, 60) == 1.0


def test_exact_then_closest_turns_closest_once_the_conversation_waited_the_timeout() -> None:
    need = {"cardio": 4}
    agent = {"cardio": 2}
    assert skill_fit(agent, need, SkillMatch.EXACT_THEN_CLOSEST, 59.9, 60) is None
    assert skill_fit(agent, need, SkillMatch.EXACT_THEN_CLOSEST, 60, 60) == 0.5
    assert skill_fit({"cardio": 4}, need, SkillMatch.EXACT_THEN_CLOSEST, 0, 60) == 1.0
    assert skill_fit(agent, need, SkillMatch.EXACT_THEN_CLOSEST, 0, 0) == 0.5, "timeout 0 = closest at once"


# Language and eligibility ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spoken", "wanted", "result"),
    [
        ({"en"}, "en", True),
        ({"en-US"}, "en", True),
        ({"en"}, "en-GB", True),
        ({"EN-us"}, "en_GB", True),
        ({"pl", "es-MX"}, "es", True),
        ({"pl"}, "en", False),
        ({"est"}, "es", False),
        (set(), "en", False),
        ({"pl"}, "", True),
    ],
)
def test_an_agent_speaks_a_language_by_tag_or_primary_subtag(
    spoken: set[str], wanted: str, result: bool
) -> None:
    assert speaks(seat("a", languages=frozenset(spoken)), wanted) is result


@pytest.mark.parametrize("presence", list(Presence))
def test_only_available_and_busy_agents_can_take_work(presence: Presence) -> None:
    assert can_take(seat("a", presence=presence), waiting()) is (
        presence in (Presence.AVAILABLE, Presence.BUSY)
    )


def test_an_agent_without_enough_free_units_cannot_take_work() -> None:
    assert can_take(seat("a", capacity=3, used=2), waiting(units=1))
    assert not can_take(seat("a", capacity=3, used=2), waiting(units=2))
    assert not can_take(seat("a", capacity=3, used=5), waiting(units=1)), "over capacity never goes negative"


def test_an_agent_who_declined_three_times_never_gets_that_conversation_again() -> None:
    declined = waiting(excluded=frozenset({"ana"}))
    agents = [seat("ana", capacity=9), seat("ben", capacity=1)]
    assert not can_take(agents[0], declined)
    assert best_agent(declined, queue(), agents, T0) == agents[1]
    assert best_agent(declined, queue(), agents[:1], T0) is None
    assert best_agent(waiting(), queue(), agents, T0) == agents[0], "the exclusion is per conversation"


def test_an_agent_who_does_not_speak_the_language_is_passed_over() -> None:
    agents = [
        seat("ana", languages=frozenset({"pl"}), capacity=9),
        seat("ben", languages=frozenset({"es-MX"})),
    ]
    assert best_agent(waiting(language="es"), queue(), agents, T0) == agents[1]


# Assignment methods ------------------------------------------------------------------------------


def test_highest_capacity_picks_the_most_free_units_then_round_robin_then_id() -> None:
    settings = queue(assignmentMethod="highest-capacity")
    roomy = seat("zed", capacity=5, used=1, last_assigned_at=at(50))
    tight = seat("amy", capacity=5, used=3, last_assigned_at=None)
    assert best_agent(waiting(), settings, [tight, roomy], at(100)) == roomy
    earlier = seat("yan", capacity=4, used=0, last_assigned_at=at(10))
    assert best_agent(waiting(), settings, [roomy, earlier], at(100)) == earlier
    never = seat("xia", capacity=4, used=0, last_assigned_at=None)
    assert best_agent(waiting(), settings, [roomy, earlier, never], at(100)) == never
    twin = seat("abe", capacity=4, used=0, last_assigned_at=None)
    assert best_agent(waiting(), settings, [never, twin], at(100)) == twin


def test_round_robin_picks_the_earliest_last_assignment_never_assigned_first() -> None:
    settings = queue(assignmentMethod="round-robin")
    recent = seat("amy", capacity=9, last_assigned_at=at(90))
    old = seat("zed", capacity=1, last_assigned_at=at(10))
    assert best_agent(waiting(), settings, [recent, old], at(100)) == old
    fresh = seat("yan", last_assigned_at=None)
    assert best_agent(waiting(), settings, [recent, old, fresh], at(100)) == fresh
    tie = seat("abe", last_assigned_at=at(10))
    assert best_agent(waiting(), settings, [old, tie], at(100)) == tie


def test_most_idle_picks_agents_without_work_longest_idle_first_then_busy_by_last_assignment() -> None:
    settings = queue(assignmentMethod="most-idle")
    idle_long = seat("zed", used=0, idle_since=at(5), last_assigned_at=at(1))
    idle_short = seat("amy", used=0, idle_since=at(80))
    busy = seat("abe", used=1, last_assigned_at=at(0), idle_since=None)
    never = seat("yan", used=0, idle_since=None)
    assert best_agent(waiting(), settings, [busy, idle_short, idle_long], at(100)) == idle_long
    assert best_agent(waiting(), settings, [busy, idle_short, idle_long, never], at(100)) == never
    busier = seat("bob", used=2, last_assigned_at=at(50))
    assert best_agent(waiting(), settings, [busier, busy], at(100)) == busy


def test_with_closest_matching_the_better_skill_fit_wins_over_the_method() -> None:
    settings = queue(skillMatch="closest", assignmentMethod="round-robin")
    item = waiting(skills={"cardio": 4})
    weak = seat("amy", skills={"cardio": 1}, last_assigned_at=None)
    strong = seat("zed", skills={"cardio": 3}, last_assigned_at=at(99))
    assert best_agent(item, settings, [weak, strong], at(100)) == strong
    perfect = seat("yan", skills={"cardio": 8}, last_assigned_at=at(99.5))
    assert best_agent(item, settings, [weak, strong, perfect], at(100)) == perfect
    nobody = seat("abe")
    assert best_agent(item, settings, [nobody], at(100)) == nobody, "closest always finds someone"


def test_exact_then_closest_waits_for_an_exact_match_until_the_timeout() -> None:
    settings = queue(
        skillMatch="exact-then-closest", exactMatchTimeoutSeconds=30, requiredSkills={"cardio": 3}
    )
    partial = seat("amy", skills={"cardio": 2})
    item = waiting(enqueued_at=T0)
    assert best_agent(item, settings, [partial], at(29)) is None
    assert best_agent(item, settings, [partial], at(30)) == partial
    exact = seat("zed", skills={"cardio": 3}, last_assigned_at=at(1))
    assert best_agent(item, settings, [partial, exact], at(30)) == exact


def test_exact_matching_never_offers_to_an_agent_missing_a_skill() -> None:
    settings = queue(skillMatch="exact", requiredSkills={"cardio": 3})
    assert best_agent(waiting(), settings, [seat("amy", skills={"cardio": 2})], at(10**6)) is None
    assert best_agent(waiting(skills={"peds": 1}), settings, [seat("b", skills={"cardio": 3})], T0) is None


# Waiting order and the agent's next conversation -------------------------------------------------


def test_a_queue_serves_higher_priority_first_then_longest_waiting() -> None:
    items = [
        waiting("late-urgent", priority=2, enqueued_at=at(30)),
        waiting("early-routine", priority=1, enqueued_at=at(0)),
        waiting("early-urgent", priority=2, enqueued_at=at(10)),
        waiting("b-tie", priority=1, enqueued_at=at(0)),
    ]
    expected = ["early-urgent", "late-urgent", "b-tie", "early-routine"]
    assert [i.conversation_id for i in sorted(items, key=waiting_key)] == expected
    assert [i.conversation_id for i in sorted(items, key=waiting_sort_key)] == expected


def test_a_freed_agent_takes_from_the_smallest_priority_number_queue_first() -> None:
    vip = queue(priority=1)
    general = queue(priority=5)
    first = waiting("g1", queue_id="general", priority=3, enqueued_at=at(0))
    second = waiting("v1", queue_id="vip", priority=1, enqueued_at=at(50))
    agent = seat("amy")
    assert next_for_agent(agent, [(general, [first]), (vip, [second])], at(60)) == second
    tied = waiting("a1", queue_id="alpha", enqueued_at=at(55))
    assert next_for_agent(agent, [(vip, [second]), (queue(priority=1), [tied])], at(60)) == tied, "ties by id"
    assert next_for_agent(agent, [(general, []), (vip, [])], at(60)) is None


def test_a_freed_agent_skips_what_it_cannot_take_and_takes_the_next_in_order() -> None:
    settings = queue(skillMatch="exact")
    agent = seat("amy", skills={"cardio": 2}, languages=frozenset({"en-US"}))
    items = [
        waiting("spanish", enqueued_at=at(0), language="es"),
        waiting("too-hard", enqueued_at=at(1), skills={"cardio": 3}),
        waiting("declined", enqueued_at=at(2), excluded=frozenset({"amy"})),
        waiting("big", enqueued_at=at(3), units=4),
        waiting("fits", enqueued_at=at(4), skills={"cardio": 2}),
        waiting("later", enqueued_at=at(5)),
    ]
    assert next_for_agent(agent, [(settings, list(reversed(items)))], at(10)) == items[4]


def test_a_freed_agent_gets_the_head_of_a_closest_queue_even_when_not_a_perfect_fit() -> None:
    closest = queue(skillMatch="closest")
    agent = seat("amy", skills={"cardio": 1})
    head = waiting("head", enqueued_at=at(0), skills={"cardio": 5})
    easy = waiting("easy", enqueued_at=at(1))
    assert next_for_agent(agent, [(closest, [easy, head])], at(2)) == head
    timed = queue(skillMatch="exact-then-closest", exactMatchTimeoutSeconds=60)
    assert next_for_agent(agent, [(timed, [easy, head])], at(59)) == easy
    assert next_for_agent(agent, [(timed, [easy, head])], at(60)) == head


def test_an_unroutable_agent_gets_nothing() -> None:
    for presence in (Presence.AWAY, Presence.OFFLINE, Presence.DND):
        assert next_for_agent(seat("a", presence=presence), [(queue(), [waiting()])], T0) is None


# Presence by load --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chosen", "used", "expected"),
    [
        (Presence.AVAILABLE, 0, Presence.AVAILABLE),
        (Presence.AVAILABLE, 1, Presence.BUSY),
        (Presence.AVAILABLE, 3, Presence.DND),
        (Presence.BUSY, 0, Presence.BUSY),
        (Presence.BUSY, 2, Presence.BUSY),
        (Presence.BUSY, 3, Presence.DND),
        (Presence.DND, 0, Presence.DND),
        (Presence.DND, 1, Presence.DND),
        (Presence.AWAY, 0, Presence.AWAY),
        (Presence.AWAY, 3, Presence.AWAY),
        (Presence.OFFLINE, 1, Presence.OFFLINE),
        (Presence.OFFLINE, 3, Presence.OFFLINE),
    ],
)
def test_presence_follows_load_but_never_loses_what_the_agent_chose(
    chosen: Presence, used: int, expected: Presence
) -> None:
    assert presence_for_load(chosen, used, 3) is expected


def test_a_full_agent_goes_dnd_and_comes_back_when_work_ends() -> None:
    dispatcher = Dispatcher(queues={"general": queue()})
    dispatcher.update_seat(seat("amy", capacity=2))
    dispatcher.add_waiting(waiting("c1", enqueued_at=at(0)))
    dispatcher.add_waiting(waiting("c2", enqueued_at=at(1)))
    assert dispatcher.assign_all(at(5)) == [("c1", "amy"), ("c2", "amy")]
    assert dispatcher.seats["amy"].presence is Presence.DND
    assert dispatcher.seats["amy"].last_assigned_at == at(5)
    dispatcher.release("c1", at(10))
    assert dispatcher.seats["amy"].presence is Presence.BUSY
    dispatcher.release("c2", at(20))
    assert dispatcher.seats["amy"].presence is Presence.AVAILABLE
    assert dispatcher.seats["amy"].idle_since == at(20)


def test_an_agent_who_went_away_while_working_stays_away_when_work_ends() -> None:
    dispatcher = Dispatcher(queues={"general": queue()})
    dispatcher.update_seat(seat("amy", capacity=2))
    dispatcher.add_waiting(waiting("c1"))
    dispatcher.assign_all(at(1))
    dispatcher.update_seat(dispatcher.seats["amy"], chosen=Presence.AWAY)
    dispatcher.release("c1", at(2))
    assert dispatcher.seats["amy"].presence is Presence.AWAY
    dispatcher.add_waiting(waiting("c2"))
    assert dispatcher.assign_all(at(3)) == []


# Operating hours ---------------------------------------------------------------------------------


def hours(zone: str, **days: list[list[str]]) -> OperatingHours:
    return OperatingHours.model_validate({"timeZone": zone, "weeklyHours": days})


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


WARSAW_OFFICE = hours(
    "Europe/Warsaw", **{day: [["08:00", "16:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
)
NEW_YORK_OFFICE = hours(
    "America/New_York", **{day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
)


@pytest.mark.parametrize(
    ("now", "open_"),
    [
        (utc(2026, 3, 27, 7, 0), True),  # Friday 08:00 CET
        (utc(2026, 3, 27, 6, 59), False),  # Friday 07:59 CET
        (utc(2026, 3, 27, 14, 59), True),  # Friday 15:59 CET
        (utc(2026, 3, 27, 15, 0), False),  # Friday 16:00 CET: the end is exclusive
        (utc(2026, 3, 30, 6, 0), True),  # Monday after the spring change: 08:00 CEST
        (utc(2026, 3, 30, 5, 59), False),  # Monday 07:59 CEST
        (utc(2026, 3, 30, 14, 0), False),  # Monday 16:00 CEST
        (utc(2026, 3, 28, 10, 0), False),  # Saturday is closed
        (utc(2026, 10, 23, 6, 0), True),  # Friday before the autumn change: 08:00 CEST
        (utc(2026, 10, 26, 6, 0), False),  # Monday after it: 07:00 CET
        (utc(2026, 10, 26, 7, 0), True),  # Monday 08:00 CET
    ],
)
def test_warsaw_hours_follow_the_wall_clock_across_dst(now: datetime, open_: bool) -> None:
    assert is_open(WARSAW_OFFICE, now) is open_


@pytest.mark.parametrize(
    ("now", "open_"),
    [
        (utc(2026, 3, 6, 14, 0), True),  # Friday 09:00 EST
        (utc(2026, 3, 6, 13, 59), False),  # Friday 08:59 EST
        (utc(2026, 3, 9, 13, 0), True),  # Monday after the spring change: 09:00 EDT
        (utc(2026, 3, 9, 12, 59), False),  # Monday 08:59 EDT
        (utc(2026, 3, 9, 21, 0), False),  # Monday 17:00 EDT
        (utc(2026, 11, 2, 13, 30), False),  # Monday after the autumn change: 08:30 EST
        (utc(2026, 11, 2, 14, 0), True),  # Monday 09:00 EST
        (utc(2026, 3, 8, 14, 0), False),  # the Sunday of the change is closed
    ],
)
def test_new_york_hours_follow_the_wall_clock_across_dst(now: datetime, open_: bool) -> None:
    assert is_open(NEW_YORK_OFFICE, now) is open_


def open_minutes(office: OperatingHours, start: datetime, end: datetime) -> int:
    minutes = int((end - start).total_seconds() // 60)
    return sum(is_open(office, start + timedelta(minutes=m)) for m in range(minutes))


def test_a_range_inside_the_skipped_spring_hour_never_opens_that_night() -> None:
    night = hours("Europe/Warsaw", sun=[["02:00", "03:00"]])
    # Sunday 29 March 2026 in Warsaw, local midnight to midnight (23 real hours).
    assert open_minutes(night, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0)) == 0
    # The Sunday before: an ordinary hour.
    assert open_minutes(night, utc(2026, 3, 21, 23, 0), utc(2026, 3, 22, 23, 0)) == 60


def test_a_range_inside_the_repeated_autumn_hour_is_open_for_both_passes() -> None:
    night = hours("America/New_York", sun=[["01:00", "02:00"]])
    # Sunday 1 November 2026 in New York: 01:00-02:00 happens twice, 05:00-07:00 UTC.
    assert open_minutes(night, utc(2026, 11, 1, 4, 0), utc(2026, 11, 2, 5, 0)) == 120
    assert is_open(night, utc(2026, 11, 1, 4, 59)) is False
    assert is_open(night, utc(2026, 11, 1, 5, 0)) is True
    assert is_open(night, utc(2026, 11, 1, 6, 59)) is True
    assert is_open(night, utc(2026, 11, 1, 7, 0)) is False


def test_an_overnight_shift_is_split_at_midnight_and_24_00_ends_the_day() -> None:
    night = hours("Europe/Warsaw", fri=[["22:00", "24:00"]], sat=[["00:00", "06:00"]])
    # Winter: Warsaw is UTC+1.
    assert is_open(night, utc(2026, 1, 9, 20, 59)) is False  # Friday 21:59
    assert is_open(night, utc(2026, 1, 9, 21, 0)) is True  # Friday 22:00
    assert is_open(night, utc(2026, 1, 9, 22, 59, 59)) is True  # Friday 23:59:59
    assert is_open(night, utc(2026, 1, 9, 23, 0)) is True  # Saturday 00:00
    assert is_open(night, utc(2026, 1, 10, 4, 59)) is True  # Saturday 05:59
    assert is_open(night, utc(2026, 1, 10, 5, 0)) is False  # Saturday 06:00
    assert open_minutes(night, utc(2026, 1, 10, 23, 0), utc(2026, 1, 11, 23, 0)) == 0, "Sunday is closed"


def test_no_hours_means_always_open_and_naive_times_are_utc() -> None:
    assert is_open(None, T0)
    office = hours("UTC", mon=[["09:00", "10:00"]])
    assert is_open(office, datetime(2026, 3, 2, 9, 30))
    assert not is_open(office, datetime(2026, 3, 2, 10, 0))


# Overflow ----------------------------------------------------------------------------------------


def test_a_full_queue_overflows_on_arrival() -> None:
    settings = queue(overflow={"maxWaiting": 2})
    assert not overflow_on_arrival(settings, 1, T0)
    assert overflow_on_arrival(settings, 2, T0)
    assert overflow_on_arrival(queue(overflow={"maxWaiting": 0}), 0, T0)
    assert not overflow_on_arrival(queue(), 10_000, T0)


def test_a_closed_queue_overflows_on_arrival() -> None:
    settings = queue(
        operatingHours={"timeZone": "Europe/Warsaw", "weeklyHours": {"mon": [["08:00", "16:00"]]}}
    )
    assert overflow_on_arrival(settings, 0, utc(2026, 3, 2, 6, 0))  # Monday 07:00 CET
    assert not overflow_on_arrival(settings, 0, utc(2026, 3, 2, 7, 0))  # Monday 08:00 CET


def test_a_conversation_overflows_once_it_waited_the_limit() -> None:
    settings = queue(overflow={"maxWaitSeconds": 120, "action": "transfer", "targetQueueId": "backup"})
    item = waiting(enqueued_at=T0)
    assert not overflow_while_waiting(settings, item, at(119.999))
    assert overflow_while_waiting(settings, item, at(120))  # at its deadline
    assert not overflow_while_waiting(queue(), item, at(10**7))


def test_the_timed_rules_have_deadlines_counted_from_when_the_conversation_was_queued() -> None:
    item = waiting(enqueued_at=T0, skills={"cardio": 2})
    timed = queue(
        skillMatch="exact-then-closest", exactMatchTimeoutSeconds=45, overflow={"maxWaitSeconds": 300}
    )
    assert exact_match_deadline(timed, item) == at(45)
    assert overflow_deadline(timed, item) == at(300)
    # Nothing to relax: exact matching, or no skill asked for.
    assert exact_match_deadline(queue(skillMatch="exact", exactMatchTimeoutSeconds=45), item) is None
    assert exact_match_deadline(timed, waiting(enqueued_at=T0)) is None
    assert overflow_deadline(queue(), item) is None


# Sort keys ---------------------------------------------------------------------------------------


def test_seat_sort_keys_are_fixed_width_and_skip_seats_that_cannot_take_work() -> None:
    a = seat("amy", capacity=5, used=2, last_assigned_at=datetime(2026, 3, 2, 10, 0, 0, 5, tzinfo=UTC))
    assert seat_sort_key(AssignmentMethod.HIGHEST_CAPACITY, a) == "s|996|2026-03-02T10:00:00.000Z|amy"
    assert seat_sort_key(AssignmentMethod.ROUND_ROBIN, seat("b")) == "s|0000-00-00T00:00:00.000Z|b"
    assert (
        seat_sort_key(AssignmentMethod.MOST_IDLE, seat("c", idle_since=T0))
        == "s|0|2026-03-02T09:00:00.000Z|c"
    )
    assert seat_sort_key(AssignmentMethod.MOST_IDLE, a) == "s|1|2026-03-02T10:00:00.000Z|amy"
    assert seat_sort_key(AssignmentMethod.ROUND_ROBIN, seat("d", used=3)) is None
    for presence in (Presence.DND, Presence.AWAY, Presence.OFFLINE):
        assert seat_sort_key(AssignmentMethod.ROUND_ROBIN, seat("e", presence=presence)) is None


def test_waiting_sort_keys_use_utc_whatever_the_offset() -> None:
    in_warsaw = T0.astimezone(ZoneInfo("Europe/Warsaw"))
    assert (
        waiting_sort_key(waiting("c9", priority=3, enqueued_at=in_warsaw))
        == "w|996|2026-03-02T09:00:00.000Z|c9"
    )
    naive = waiting("c9", priority=3, enqueued_at=datetime(2026, 3, 2, 10, 0))
    assert waiting_sort_key(naive) == "w|996|2026-03-02T10:00:00.000Z|c9"
    with pytest.raises(ValueError, match="sort key"):
        waiting_sort_key(waiting(priority=1000))


# The reference dispatcher ------------------------------------------------------------------------


def test_a_redelivered_conversation_is_queued_once_and_assigned_once() -> None:
    dispatcher = Dispatcher(queues={"general": queue()})
    assert dispatcher.add_waiting(waiting("c1"))
    assert not dispatcher.add_waiting(waiting("c1"))
    dispatcher.update_seat(seat("amy"))
    assert dispatcher.assign_all(at(1)) == [("c1", "amy")]
    assert not dispatcher.add_waiting(waiting("c1")), "already assigned"
    assert dispatcher.assign_all(at(2)) == []


def test_the_dispatcher_serves_queues_by_priority_number_and_only_their_own_agents() -> None:
    dispatcher = Dispatcher(
        queues={"general": queue(priority=10), "vip": queue(priority=1), "billing": queue()}
    )
    dispatcher.update_seat(seat("amy", capacity=1), queues=["general", "vip"])
    dispatcher.update_seat(seat("bob", capacity=1), queues=["billing"])
    dispatcher.add_waiting(waiting("g", queue_id="general", priority=3, enqueued_at=at(0)))
    dispatcher.add_waiting(waiting("v", queue_id="vip", priority=1, enqueued_at=at(9)))
    assert dispatcher.assign_all(at(10)) == [("v", "amy")]
    assert dispatcher.remove("g") is not None
    assert dispatcher.remove("g") is None
    with pytest.raises(KeyError):
        dispatcher.add_waiting(waiting("x", queue_id="nowhere"))


def test_units_larger_than_an_agents_free_capacity_wait_for_someone_with_room() -> None:
    dispatcher = Dispatcher(queues={"general": queue()})
    dispatcher.update_seat(seat("amy", capacity=3, used=2))
    dispatcher.add_waiting(waiting("video", units=2, enqueued_at=at(0)))
    dispatcher.add_waiting(waiting("chat", units=1, enqueued_at=at(1)))
    assert dispatcher.assign_all(at(2)) == [("chat", "amy")]
    assert list(dispatcher.waiting) == ["video"]


def test_the_dispatcher_serves_a_queue_by_priority_then_longest_waiting() -> None:
    dispatcher = Dispatcher(queues={"general": queue()})
    dispatcher.add_waiting(waiting("late-routine", priority=1, enqueued_at=at(5)))
    dispatcher.add_waiting(waiting("early-routine", priority=1, enqueued_at=at(1)))
    dispatcher.add_waiting(waiting("late-urgent", priority=2, enqueued_at=at(9)))
    dispatcher.update_seat(seat("amy", capacity=2))
    assert dispatcher.assign_all(at(10)) == [("late-urgent", "amy"), ("early-routine", "amy")]
    assert list(dispatcher.waiting) == ["late-routine"]
