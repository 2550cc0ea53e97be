"""The event history consumer: its own subscription of the `events` topic (every subject, no
sessions), filing each event's envelope under its UTC day (shared/history). A redelivered or
resubmitted event meets its own document and changes nothing; a body that is not an envelope
fails the invocation, so after the subscription's max delivery count it is dead-lettered."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()


@bp.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%EVENTS_TOPIC%",
    subscription_name="%HISTORY_SUBSCRIPTION%",
    connection="ServiceBusConnection",
)
async def event_history(msg: func.ServiceBusMessage) -> None:
    from shared.history.api import parse_envelope, record
    from shared.kernel.messaging import handling
    from shared.runtime import get_runtime

    with handling(msg):
        rt = await get_runtime()
        await record(rt.store, parse_envelope(msg.get_body()))
