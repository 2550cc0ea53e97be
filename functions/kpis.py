"""The KPI consumer: its own session-enabled subscription of the `events` topic (each aggregate's
events in order), adding each event to the 15-minute buckets exactly once per document
(shared/kpis) and pushing the supervisors' live tiles. Subjects it does not count are
acknowledged unchanged. Also the supervisors' KPI routes.

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

bp = func.Blueprint()


@bp.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%EVENTS_TOPIC%",
    subscription_name="%KPIS_SUBSCRIPTION%",
    connection="ServiceBusConnection",
    is_sessions_enabled=True,
)
async def kpi_events(msg: func.ServiceBusMessage) -> None:
    from shared.kernel.messaging import handling
    from shared.kpis.api import apply_kpi_event, parse_envelope, push_tiles
    from shared.runtime import get_runtime

    with handling(msg):
        rt = await get_runtime()
        envelope = parse_envelope(msg.get_body())
        await apply_kpi_event(rt.store, envelope, rt.settings.kpi_short_abandon_seconds)
        await push_tiles(rt.store, lambda: rt.realtime, rt.clock, envelope)


api = Api(bp, tag="kpis")
SUPERVISOR = allow(Role.SUPERVISOR)
M = "shared.kpis.model:"


@api.route(
    "supervisor/kpis",
    "GET",
    access=SUPERVISOR,
    summary="KPIs over a range: a series by interval and the totals (docs/KPIS.md)",
    query=M + "KpiQuery",
    response=M + "KpiAnswer",
    errors=(400,),
)
async def supervisor_kpis(call: Call) -> Reply:
    """The whole service, one queue (`queueId`) or one agent (`agentId`). The range is widened to
    whole buckets, both ends echoed: `from` down to its 15-minute boundary, `to` up to a whole
    number of intervals from there (so a day starts at the caller's `from`, e.g. a local
    midnight). `from` after `to`, a range over 93 days or an unknown interval: 400. A KPI with
    no denominator in a bucket or the range is null, never 0."""
    from shared.kpis.api import kpi_range

    q = call.query
    answer = await kpi_range(call.runtime.store, q.from_, q.to, q.interval, q.queue_id, q.agent_id)
    return Reply(body=answer)


@api.route(
    "supervisor/kpis/live",
    "GET",
    access=SUPERVISOR,
    summary="Live queues and agents from routing's state (waiting, longest wait, active, available)",
    response=M + "KpiLive",
)
async def supervisor_kpis_live(call: Call) -> Reply:
    """Each queue's waiting conversations and longest wait, conversations offered, active or in
    wrap-up, available agents and today's (UTC) service level; each agent serving a queue with
    presence, load and capacity. Bounded single-partition reads per queue; ids only."""
    from shared.kpis.api import kpi_live

    rt = call.runtime
    return Reply(body=await kpi_live(rt.store, rt.clock))
