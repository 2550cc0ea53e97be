"""The `kpis` container's documents: an hour of one scope (four 15-minute buckets of sums), each
aggregate's mark in that hour (beside it, in the same partition), and an agent's last presence
(the open utilization interval)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from shared.kernel.ids import MAX_ID, is_id
from shared.kernel.stored import Document
from shared.kernel.times import stamp

Mark = tuple[int, int]  # an event's (version, n) within its aggregate


def hour_partition(scope: str, hour: datetime) -> str:
    return f"{scope}:{hour.date().isoformat()}"


def hour_id(scope: str, hour: datetime) -> str:
    return f"{scope}|{stamp(hour)[:13]}"


def mark_id(hour: datetime, aggregate_id: str) -> str:
    """`mark:<YYYY-MM-DDTHH>:<aggregate id>`, unique in the hour's partition (`<scope>:<day>`,
    so the scope need not be repeated); an aggregate id that would make it longer than an `Id`
    (100) is replaced by `h-<sha256 of it>`."""
    readable = f"mark:{stamp(hour)[:13]}:{aggregate_id}"
    if len(readable) <= MAX_ID and is_id(readable):
        return readable
    return f"mark:{stamp(hour)[:13]}:h-{hashlib.sha256(aggregate_id.encode()).hexdigest()}"


# Every agent's last presence in one partition: a range query adds the intervals still open
# with one single-partition read (an agent's document is still written alone, with its ETag).
PRESENCE_PARTITION = "presence"


def presence_id(agent_id: str) -> str:
    return f"presence:{agent_id}"


class HourDocument(Document):
    """One scope's hour: `buckets[q]` the sums of its quarter q (0-3, sparse: absent = 0). Its
    size does not depend on the traffic: what each aggregate added is marked in its own
    `MarkDocument` beside it. `sortKey` (the hour's stamp) is the field the embedded store
    indexes: a day's query walks the hours, not the marks of its partition."""

    type: Literal["kpi-hour"] = "kpi-hour"
    partition: str
    scope: str
    hour: str
    sort_key: str
    buckets: list[dict[str, int]]


class MarkDocument(Document):
    """What one aggregate added to one scope's hour, in the hour's partition, written in one
    batch with it: `applied` the last event (version, n) of the aggregate that added to this
    hour, so a redelivered or replayed event changes nothing; `outcomes` what each thing the
    aggregate counts once by its final outcome added (`{"q", "sums"}`), so a later outcome
    replaces it (an outcome's key is one aggregate's: a notification's, an appointment's)."""

    type: Literal["kpi-mark"] = "kpi-mark"
    partition: str
    scope: str
    hour: str
    aggregate_id: str
    applied: list[int]
    outcomes: dict[str, dict[str, Any]] = {}


class PresenceState(Document):
    """An agent's last `agent.presence` as the aggregator applied it: the start of the interval
    the next one closes."""

    type: Literal["kpi-presence"] = "kpi-presence"
    partition: str
    agent_id: str
    status: str
    load: int = 0
    capacity: int = 0
    queues: list[str] = []
    at: str
    applied: list[int]
