"""The `kpis` container's documents: an hour of one scope (four 15-minute buckets of sums), and
an agent's last presence (the open utilization interval)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from shared.kernel.stored import Document
from shared.kernel.times import stamp

Mark = tuple[int, int]  # an event's (version, n) within its aggregate


def hour_partition(scope: str, hour: datetime) -> str:
    return f"{scope}:{hour.date().isoformat()}"


def hour_id(scope: str, hour: datetime) -> str:
    return f"{scope}|{stamp(hour)[:13]}"


def presence_partition(agent_id: str) -> str:
    return f"presence:{agent_id}"


class HourDocument(Document):
    """One scope's hour: `buckets[q]` the sums of its quarter q (0-3, sparse: absent = 0);
    `applied` the last event (version, n) of each aggregate that added to this hour, so a
    redelivered or replayed event changes nothing; `outcomes` what each thing counted once by
    its final outcome added (`{"q", "sums"}`), so a later outcome replaces it."""

    type: Literal["kpi-hour"] = "kpi-hour"
    partition: str
    scope: str
    hour: str
    buckets: list[dict[str, int]]
    applied: dict[str, list[int]] = {}
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
