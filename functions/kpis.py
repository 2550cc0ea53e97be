"""The KPI consumer: its own session-enabled subscription of the `events` topic (each aggregate's
events in order), adding each event to the 15-minute buckets exactly once per document
(shared/kpis) and pushing the supervisors' live tiles. Subjects it does not count are
acknowledged unchanged."""

from __future__ import annotations

import azure.functions as func

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
    from shared.kpis.api import apply_kpi_event, parse_envelope
    from shared.runtime import get_runtime

    with handling(msg):
        rt = await get_runtime()
        envelope = parse_envelope(msg.get_body())
        await apply_kpi_event(rt.store, envelope, rt.settings.kpi_short_abandon_seconds)
