"""Bot callbacks: the `callbacks` subscription of the `events` topic (sessions on: one worker at a
time per conversation, in event order) turns a conversation's events into signed POSTs to the bot
that escalated it, and takes the consumer's own wake-ups (retries, queue-position looks). The
logic is in shared/callbacks/consumer.py."""

from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


@bp.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%EVENTS_TOPIC%",
    subscription_name="%CALLBACKS_SUBSCRIPTION%",
    connection="ServiceBusConnection",
    is_sessions_enabled=True,
)
async def bot_callbacks(msg: func.ServiceBusMessage) -> None:
    """Idempotent: an event at or behind the last one applied changes nothing; a wake-up that
    finds nothing due does nothing. An exception abandons the message (it comes back first in its
    session); after the subscription's max delivery count it is dead-lettered."""
    from shared.callbacks.api import CallbackConsumer
    from shared.kernel.messaging import handling
    from shared.runtime import get_runtime

    with handling(msg):
        rt = await get_runtime()
        consumer = CallbackConsumer(rt.store, rt.bus, rt.clock, lambda: rt.callbacks)
        await consumer.handle(json.loads(msg.get_body()))
