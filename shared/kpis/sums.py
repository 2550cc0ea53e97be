"""What each event adds to the 15-minute buckets (docs/KPIS.md, one home for the formulas'
parts): pure functions from an envelope to `Part`s, and from summed buckets to the KPIs.

A bucket holds integer sums only (counts, and durations in **milliseconds**): integer addition is
exact and commutative, so any order of application (sessions of different aggregates interleave
freely) gives the same totals, which float sums would not promise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.kernel.times import parse_stamp

QUARTER = timedelta(minutes=15)
ALL = "all"

# The sums a bucket may hold (absent = 0).
COUNTS = (
    "incoming",
    "engaged",
    "abandoned",
    "shortAbandoned",
    "transferred",
    "firstWaitCount",
    "firstWaitMs",
    "asaCount",
    "asaMs",
    "slWithin",
    "slTotal",
    "ahtCount",
    "ahtMs",
    "frCount",
    "frMs",
    "busyUnitMs",
    "capacityUnitMs",
    "surveysSent",
    "surveysAnswered",
    "csatAnswers",
    "csatPositive",
    "npsAnswers",
    "npsPromoters",
    "npsDetractors",
    "remindersSent",
    "remindersDelivered",
    "noShows",
    "attended",
)

Sums = dict[str, int]


@dataclass(frozen=True)
class Part:
    """`sums` added to the bucket starting at `quarter` of `scope`. With `outcome` (a key naming
    one thing that is counted once by its final outcome: a notification, an appointment), the
    sums replace whatever that key added to this scope and hour before."""

    scope: str
    quarter: datetime
    sums: Mapping[str, int]
    outcome: str | None = None


def quarter_of(when: datetime) -> datetime:
    return when.replace(minute=when.minute - when.minute % 15, second=0, microsecond=0)


def hour_of(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def scopes(queue_id: str | None, agent_id: str | None) -> list[str]:
    found = [ALL]
    if queue_id:
        found.append(f"queue:{queue_id}")
    if agent_id:
        found.append(f"agent:{agent_id}")
    return found


@dataclass
class _Parts:
    at: str
    found: list[Part] = field(default_factory=list)

    def add(
        self,
        stamp: str | None,
        queue_id: str | None,
        agent_id: str | None,
        sums: Mapping[str, int],
        outcome: str | None = None,
    ) -> None:
        quarter = quarter_of(parse_stamp(stamp or self.at))
        self.found += [Part(scope, quarter, sums, outcome) for scope in scopes(queue_id, agent_id)]


def event_parts(envelope: Mapping[str, Any], short_abandon_seconds: float) -> list[Part]:
    """What one event adds (presence excepted: see `presence_parts`); [] for the events no KPI
    counts. Each field of an event lands once in each of its scopes (`all`, queue, agent)."""
    kind = envelope["type"]
    d: Mapping[str, Any] = envelope.get("data") or {}
    parts = _Parts(envelope["at"])
    queue, agent = d.get("queueId"), d.get("agentId")
    if kind == "conversation.waiting":
        if d.get("first"):
            parts.add(d.get("queuedAt"), queue, None, {"incoming": 1})
    elif kind == "conversation.accepted":
        accepted = d.get("acceptedAt")
        if d.get("waitSeconds") is not None:
            parts.add(accepted, queue, agent, {"asaCount": 1, "asaMs": ms(d["waitSeconds"])})
        if d.get("first"):
            first_wait, threshold = d.get("firstWaitSeconds"), d.get("serviceLevelSeconds")
            sums: Sums = {"engaged": 1, "slTotal": 1}
            if first_wait is not None:
                sums.update(firstWaitCount=1, firstWaitMs=ms(first_wait))
                if threshold is not None and first_wait <= threshold:
                    sums["slWithin"] = 1
            parts.add(accepted, d.get("firstQueueId") or queue, agent, sums)
    elif kind == "conversation.abandoned":
        wait = d.get("waitSeconds")
        if wait is not None and wait < short_abandon_seconds:
            parts.add(d.get("abandonedAt"), queue, None, {"shortAbandoned": 1})
        else:
            parts.add(d.get("abandonedAt"), queue, None, {"abandoned": 1})
            parts.add(d.get("abandonedAt"), d.get("firstQueueId") or queue, None, {"slTotal": 1})
    elif kind == "conversation.transferred":
        if d.get("engaged"):
            parts.add(None, d.get("fromQueueId"), d.get("fromAgentId"), {"transferred": 1})
    elif kind == "conversation.closed":
        if d.get("handled"):
            handle = ms(d.get("activeSeconds") or 0) + ms(d.get("wrapupSeconds") or 0)
            parts.add(d.get("closedAt"), queue, agent, {"ahtCount": 1, "ahtMs": handle})
    elif kind == "conversation.message":
        if d.get("firstAgentResponse") and d.get("responseSeconds") is not None:
            parts.add(None, queue, agent, {"frCount": 1, "frMs": ms(d["responseSeconds"])})
    elif kind == "survey.sent":
        parts.add(d.get("sentAt"), queue, agent, {"surveysSent": 1})
    elif kind == "survey.answered":
        answered: Sums = {"surveysAnswered": 1}
        csat, nps = d.get("csat"), d.get("nps")
        if isinstance(csat, int) and 1 <= csat <= 5:
            answered.update(csatAnswers=1, csatPositive=int(csat >= 4))
        if isinstance(nps, int) and 0 <= nps <= 10:
            answered.update(npsAnswers=1, npsPromoters=int(nps >= 9), npsDetractors=int(nps <= 6))
        parts.add(d.get("sentAt"), queue, agent, answered)
    elif kind.startswith("notification.") and d.get("purpose") == "reminder":
        # Each reminder once, whatever its events: a fallback after a non-delivery report emits a
        # second `.sent` (same `sentAt`, the first send's), reports may come twice, and delivered
        # on any channel wins over any failure. The follow-ups' events are their patient
        # ledger's: the notification names itself (`notificationId`).
        notification = d.get("notificationId") or envelope["aggregateId"]
        if kind == "notification.sent":
            parts.add(d.get("sentAt"), None, None, {"remindersSent": 1}, f"{notification}:sent")
        elif kind == "notification.delivered":
            parts.add(d.get("sentAt"), None, None, {"remindersDelivered": 1}, f"{notification}:delivered")
    elif kind in ("appointment.noshow", "appointment.arrived", "appointment.fulfilled") and d.get("start"):
        outcome = {"noShows": 1} if kind == "appointment.noshow" else {"attended": 1}
        parts.add(d["start"], None, None, outcome, f"{envelope['aggregateId']}:outcome")
    return [p for p in parts.found if p.sums or p.outcome]


def presence_parts(agent_id: str, previous: Mapping[str, Any] | None, until: datetime) -> list[Part]:
    """Utilization of the interval the previous `agent.presence` state opened and an event at
    `until` closes, split at quarter boundaries: load-ms and capacity-ms per piece, for the
    agent, the whole service and each queue the agent served then. Offline adds nothing."""
    if previous is None or previous.get("status") == "offline":
        return []
    start = parse_stamp(previous["at"])
    load, capacity = int(previous.get("load") or 0), int(previous.get("capacity") or 0)
    names = [ALL, f"agent:{agent_id}", *(f"queue:{q}" for q in previous.get("queues") or ())]
    found: list[Part] = []
    while start < until:
        quarter = quarter_of(start)
        end = min(quarter + QUARTER, until)
        piece = ms((end - start).total_seconds())
        if piece:
            sums = {"busyUnitMs": load * piece, "capacityUnitMs": capacity * piece}
            found += [Part(name, quarter, sums) for name in names]
        start = end
    return found


def add_sums(into: Sums, more: Mapping[str, int], sign: int = 1) -> None:
    for name, value in more.items():
        total = into.get(name, 0) + sign * value
        if total:
            into[name] = total
        else:
            into.pop(name, None)


def total(buckets: Iterable[Mapping[str, int]]) -> Sums:
    summed: Sums = {}
    for bucket in buckets:
        add_sums(summed, bucket)
    return summed


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator <= 0 else numerator / denominator


def _seconds(total_ms: int, count: int) -> float | None:
    # One correctly rounded division: 61400 ms / 1 is 61.4, not 61.400000000000006.
    return None if count <= 0 else total_ms / (count * 1000)


def kpis(s: Mapping[str, int]) -> dict[str, Any]:
    """The KPIs of summed buckets, as docs/KPIS.md defines them: null where there is no
    denominator, never 0."""
    g = s.get
    return {
        "incoming": g("incoming", 0),
        "engaged": g("engaged", 0),
        "abandoned": g("abandoned", 0),
        "shortAbandoned": g("shortAbandoned", 0),
        "transferred": g("transferred", 0),
        "firstWaitSeconds": _seconds(g("firstWaitMs", 0), g("firstWaitCount", 0)),
        "asaSeconds": _seconds(g("asaMs", 0), g("asaCount", 0)),
        "serviceLevel": _ratio(g("slWithin", 0), g("slTotal", 0)),
        "abandonRate": _ratio(g("abandoned", 0), g("incoming", 0) - g("shortAbandoned", 0)),
        "transferRate": _ratio(g("transferred", 0), g("engaged", 0)),
        "ahtSeconds": _seconds(g("ahtMs", 0), g("ahtCount", 0)),
        "firstResponseSeconds": _seconds(g("frMs", 0), g("frCount", 0)),
        "utilization": _ratio(g("busyUnitMs", 0), g("capacityUnitMs", 0)),
        "csat": _ratio(g("csatPositive", 0), g("csatAnswers", 0)),
        "nps": _ratio(100 * (g("npsPromoters", 0) - g("npsDetractors", 0)), g("npsAnswers", 0)),
        "surveyResponseRate": _ratio(g("surveysAnswered", 0), g("surveysSent", 0)),
        "reminderDeliveryRate": _ratio(g("remindersDelivered", 0), g("remindersSent", 0)),
        "noShowRate": _ratio(g("noShows", 0), g("noShows", 0) + g("attended", 0)),
    }


KPI_NAMES = tuple(kpis({}))
