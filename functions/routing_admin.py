"""Routing administration: queues, the ordered routing rules and agents (Administrator only).

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

if TYPE_CHECKING:
    from shared.routing.api import RoutingDirectory

bp = func.Blueprint()
api = Api(bp, tag="routing administration")

ADMIN = allow(Role.ADMINISTRATOR)
READERS = allow(Role.ADMINISTRATOR, Role.SUPERVISOR)
QUEUE = "shared.routing.model:QueueSettings"
RULES = "shared.routing.model:RoutingRules"
AGENT = "shared.routing.model:AgentProfile"
AGENT_VIEW = "shared.routing.model:AgentView"


def _directory(call: Call) -> RoutingDirectory:
    from shared.routing.api import RoutingDirectory

    return RoutingDirectory(call.runtime.store)


async def _audit(call: Call, action: str, resource: str) -> None:
    from shared.audit.api import record_access

    await record_access(
        call.runtime.store,
        call.runtime.clock,
        actor=call.user,
        action=action,  # type: ignore[arg-type]
        resource=resource,
        patient_id=None,
        correlation_id=call.correlation_id,
    )


@api.route(
    "manage/queues/{queueId}",
    "PUT",
    access=ADMIN,
    summary="Create or replace a queue",
    body=QUEUE,
    response=QUEUE,
    errors=(400, 422),
    also=((201, "Created"),),
    if_match=True,
)
async def put_queue(call: Call) -> Reply:
    """Priority (smaller is served first), assignment method, skill matching, operating hours,
    overflow and timers. An overflow target must be a known queue. Send `If-Match` with the ETag
    you read to avoid overwriting a concurrent change (412)."""
    from shared.kernel.etags import stored_etag

    queue_id = call.route("queueId")
    doc, created = await _directory(call).put_queue(
        queue_id, call.body, call.runtime.clock.now(), if_match=call.if_match
    )
    await _audit(call, "create" if created else "update", f"manage/queues/{queue_id}")
    return Reply(body=call.body, status=201 if created else 200, headers={"ETag": stored_etag(doc)})


@api.route(
    "manage/queues/{queueId}",
    "GET",
    access=READERS,
    summary="Read a queue",
    response=QUEUE,
    errors=(404,),
    etag=True,
)
async def get_queue(call: Call) -> Reply:
    """The queue's settings as last written (for administrators and supervisors)."""
    from shared.kernel.errors import NotFound
    from shared.kernel.etags import stored_etag
    from shared.routing.api import queue_settings_of

    doc = await _directory(call).queue_doc(call.route("queueId"))
    if doc is None:
        raise NotFound("no such queue")
    return Reply(body=queue_settings_of(doc), headers={"ETag": stored_etag(doc)})


@api.route(
    "manage/queues",
    "GET",
    access=READERS,
    summary="List queues in priority order",
    response="shared.routing.model:QueueList",
)
async def list_queues(call: Call) -> Reply:
    """Every queue with its id and settings, smallest priority number (served first) first."""
    return Reply(body={"items": await _directory(call).list_queues()})


@api.route(
    "manage/routing-rules",
    "PUT",
    access=ADMIN,
    summary="Replace the ordered routing rules",
    body=RULES,
    response=RULES,
    errors=(400, 422),
    if_match=True,
)
async def put_routing_rules(call: Call) -> Reply:
    """First matching rule wins; otherwise the fallback queue. Rules that name an unknown queue
    are rejected with the failing fields. `If-Match` as for queues."""
    from shared.kernel.etags import stored_etag

    doc = await _directory(call).put_rules(call.body, call.runtime.clock.now(), if_match=call.if_match)
    await _audit(call, "update", "manage/routing-rules")
    return Reply(body=call.body, headers={"ETag": stored_etag(doc)})


@api.route(
    "manage/routing-rules",
    "GET",
    access=READERS,
    summary="Read the routing rules",
    response=RULES,
    errors=(404,),
    etag=True,
)
async def get_routing_rules(call: Call) -> Reply:
    """The ordered rules and the fallback queue; 404 before any rules are configured (every
    escalation then goes to the built-in default queue)."""
    from shared.kernel.errors import NotFound
    from shared.kernel.etags import stored_etag

    doc = await _directory(call).rules_doc()
    if doc is None:
        raise NotFound("No routing rules are configured: every escalation goes to the default queue.")
    return Reply(body=doc.rules, headers={"ETag": stored_etag(doc)})


@api.route(
    "manage/agents/{agentId}",
    "PUT",
    access=ADMIN,
    summary="Create or replace an agent",
    body=AGENT,
    response=AGENT,
    errors=(400, 422),
    also=((201, "Created"),),
    if_match=True,
)
async def put_agent(call: Call) -> Reply:
    """The agent id is the agent's token `sub`. Presence and current load are kept. The ETag
    versions the profile only (what this replaces): the agent's presence and load change all
    the time without changing it, so `If-Match` fails only on another profile change (412)."""
    from shared.routing.api import profile_etag

    agent_id = call.route("agentId")
    doc, created = await _directory(call).put_agent(
        agent_id, call.body, call.runtime.clock.now(), if_match=call.if_match
    )
    await _audit(call, "create" if created else "update", f"manage/agents/{agent_id}")
    return Reply(body=call.body, status=201 if created else 200, headers={"ETag": profile_etag(doc)})


@api.route(
    "manage/agents/{agentId}",
    "GET",
    access=READERS,
    summary="Read an agent with presence and load",
    response=AGENT_VIEW,
    errors=(404,),
    etag=True,
)
async def get_agent(call: Call) -> Reply:
    """The agent's profile with their effective and chosen presence, the capacity in use and
    the conversations holding it. The ETag is the profile's (see `PUT`): routing's own load and
    presence changes never move it."""
    from shared.kernel.errors import NotFound
    from shared.routing.api import agent_view, profile_etag

    try:
        doc = await _directory(call).agent_doc(call.route("agentId"))
    except NotFound:
        raise NotFound("No such agent.") from None
    return Reply(body=agent_view(doc), headers={"ETag": profile_etag(doc)})


@api.route(
    "manage/agents",
    "GET",
    access=READERS,
    summary="List agents with presence and load, by id",
    query="shared.routing.model:AgentListQuery",
    response="shared.routing.model:AgentList",
)
async def list_agents(call: Call) -> Reply:
    """Paged with `maxItems` and `continuationToken` (absent on the last page)."""
    from shared.routing.api import agent_view

    docs, token = await _directory(call).list_agents(call.query.max_items, call.query.continuation_token)
    body: dict[str, object] = {"items": [agent_view(doc) for doc in docs]}
    if token:
        body["continuationToken"] = token
    return Reply(body=body)
