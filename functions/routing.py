"""Routing workers: the `routing` queue (classify-and-queue a conversation, find work for an agent,
and the timed rules at their deadlines: offer expiry, end of wrap-up, exact-match timeout, overflow
by wait) and the sweep timer that backs them up (lost scheduled messages, capacity leaked by a
crashed worker). The sweep runs on `%PSC_SWEEP_SCHEDULE%` (every 5 minutes by default), so an idle
Flex Consumption app is not woken every few seconds.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("psc.routing")


@bp.service_bus_queue_trigger(arg_name="msg", queue_name="%ROUTING_QUEUE%", connection="ServiceBusConnection")
async def route(msg: func.ServiceBusMessage) -> None:
    """Every kind is idempotent: a redelivered message finds the work done and changes nothing.
    An exception abandons the message; after the queue's max delivery count it is dead-lettered."""
    from shared.kernel.messaging import handling
    from shared.routing.api import handle_routing_message
    from shared.runtime import get_runtime

    with handling(msg):
        rt = await get_runtime()
        body = json.loads(msg.get_body())
        await handle_routing_message(rt.store, rt.bus, rt.clock, body)


@bp.timer_trigger(arg_name="timer", schedule="%PSC_SWEEP_SCHEDULE%", run_on_startup=False)
async def routing_sweep(timer: func.TimerRequest) -> None:
    from shared.kernel.observability import new_correlation_id, request_scope
    from shared.routing.api import Assignment, sweep
    from shared.runtime import get_runtime

    with request_scope(new_correlation_id()):
        rt = await get_runtime()
        counts = await sweep(Assignment(rt.store, rt.bus, rt.clock))
        if any(counts.values()):
            log.info("routing sweep", extra={"counts": counts})
