"""Real time: the negotiate endpoints (a short-lived hub URL for exactly the groups the caller may
see) and the `realtime` consumer of the `events` topic that pushes frames to those groups
(shared/live). Services, the SDK and models load with the first call."""

from __future__ import annotations

import json

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

bp = func.Blueprint()
api = Api(bp, tag="realtime")

ANSWER = "shared.live.model:NegotiateAnswer"


@api.route(
    "me/conversations/{conversationId}/negotiate",
    "GET",
    access=allow(Role.PATIENT),
    summary="A hub URL for my conversation's live frames",
    response=ANSWER,
    errors=(404,),
)
async def negotiate_patient(call: Call) -> Reply:
    """The connection receives the conversation's patient-visible messages, status changes and
    your place in the queue (never staff's internal notes); another patient's conversation
    answers 404. The URL lives 5 minutes: negotiate again to reconnect, then read what you missed
    with `GET …/messages?after=<last seq>`. Audited."""
    from shared.live.api import client_url, patient_groups

    rt = call.runtime
    call.own_patient_id()
    groups = await patient_groups(
        rt.store, rt.clock, call.user, call.route("conversationId"), call.correlation_id
    )
    return Reply(body={"url": await client_url(rt.realtime, call.user, groups)})


@api.route(
    "agents/me/negotiate",
    "GET",
    access=allow(Role.AGENT),
    summary="A hub URL for my offers and my conversations' live frames",
    response=ANSWER,
    errors=(404,),
)
async def negotiate_agent(call: Call) -> Reply:
    """Your own group (offers, assignments, removals) and the staff group of each conversation
    you hold now (every message, internal notes too, and status); conversations you accept later
    are added to the open connection, and one transferred or closed leaves it. 404 if you are not
    registered as an agent."""
    from shared.live.api import agent_groups, client_url

    groups = await agent_groups(call.runtime.store, call.user)
    return Reply(body={"url": await client_url(call.runtime.realtime, call.user, groups)})


@api.route(
    "supervisor/negotiate",
    "GET",
    access=allow(Role.SUPERVISOR),
    summary="A hub URL for the board's live changes",
    response=ANSWER,
)
async def negotiate_supervisor(call: Call) -> Reply:
    """The `supervisors` group: agents' presence and load, conversations' status (ids and stamps
    only), as the dashboard shows them."""
    from shared.live.api import client_url, supervisor_groups

    return Reply(body={"url": await client_url(call.runtime.realtime, call.user, supervisor_groups())})


@bp.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%EVENTS_TOPIC%",
    subscription_name="%REALTIME_SUBSCRIPTION%",
    connection="ServiceBusConnection",
    is_sessions_enabled=True,
)
async def realtime_push(msg: func.ServiceBusMessage) -> None:
    """Idempotent by a per-conversation (per-agent) watermark: a redelivered event pushes
    nothing. An exception (the hub unreachable) abandons the message; it comes again, in order."""
    from shared.kernel.messaging import handling
    from shared.live.api import LiveFeed
    from shared.runtime import get_runtime

    with handling(msg):
        rt = await get_runtime()
        await LiveFeed(rt.store, rt.realtime).handle(json.loads(msg.get_body()))
