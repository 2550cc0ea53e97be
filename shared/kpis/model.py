"""The KPI API's shapes (issue 15 fixes them): the query of `GET /api/supervisor/kpis`, its
answer, and `GET /api/supervisor/kpis/live`'s."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.kernel.ids import Id
from shared.kernel.times import Instant, InstantText
from shared.routing.api import Presence


class KpiQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    from_: Instant = Field(
        alias="from", description="Start (inclusive); rounded down to its 15-minute bucket."
    )
    to: Instant = Field(description="End (exclusive); rounded up to a whole number of intervals from `from`.")
    interval: Literal["15m", "1h", "1d"] = Field("1h", description="Bucket of the series.")
    queue_id: Id | None = Field(None, alias="queueId", description="One queue's KPIs (not with agentId).")
    agent_id: Id | None = Field(None, alias="agentId", description="One agent's KPIs (not with queueId).")


class _Out(BaseModel):
    model_config = ConfigDict(defer_build=True)


class KpiTotals(_Out):
    """docs/KPIS.md: counts are integers; seconds, fractions (0-1; utilization may exceed 1) and
    NPS (-100…100) are null when they have no denominator, never 0."""

    incoming: int
    engaged: int
    abandoned: int
    shortAbandoned: int
    transferred: int
    firstWaitSeconds: float | None
    asaSeconds: float | None
    serviceLevel: float | None
    abandonRate: float | None
    transferRate: float | None
    ahtSeconds: float | None
    firstResponseSeconds: float | None
    utilization: float | None
    csat: float | None
    nps: float | None
    surveyResponseRate: float | None
    reminderDeliveryRate: float | None
    noShowRate: float | None


class KpiBucket(KpiTotals):
    start: InstantText


class KpiAnswer(_Out):
    """The range as widened to whole buckets, its series and its totals (sums first, then ratios)."""

    from_: InstantText = Field(alias="from")
    to: InstantText
    interval: Literal["15m", "1h", "1d"]
    series: list[KpiBucket]
    totals: KpiTotals


class LiveQueue(_Out):
    queueId: str
    name: str
    waiting: int
    longestWaitSeconds: float
    active: int = Field(description="Conversations offered, active or in wrap-up in the queue.")
    agentsAvailable: int
    serviceLevelToday: float | None = Field(
        description="Today's (UTC) service level from the queue's buckets."
    )


class LiveAgent(_Out):
    agentId: str
    presence: Presence
    load: int
    capacity: int


class KpiLive(_Out):
    asOf: InstantText
    queues: list[LiveQueue]
    agents: list[LiveAgent]
