"""The dimensions as they are now, through the owning capabilities' public modules: queues and
agents (routing), providers (scheduling). Ids and settings only: no names."""

from __future__ import annotations

from typing import Any

from shared.exports.tables import Row
from shared.kernel.documents import DocumentStore

PAGE = 200


async def current_dimensions(store: DocumentStore) -> dict[str, dict[str, Row]]:
    from shared.routing.api import RoutingDirectory
    from shared.scheduling.api import list_providers

    directory = RoutingDirectory(store)
    queues = {
        q["id"]: {
            "priority": q.get("priority"),
            "assignmentMethod": q.get("assignmentMethod"),
            "serviceLevelSeconds": q.get("serviceLevelSeconds"),
            "acceptTimeoutSeconds": q.get("acceptTimeoutSeconds"),
            "wrapupSeconds": q.get("wrapupSeconds"),
            "capacityUnits": q.get("capacityUnits"),
        }
        for q in await directory.list_queues()
    }
    agents: dict[str, Row] = {}
    token: str | None = None
    while True:
        page, token = await directory.list_agents(PAGE, token)
        for agent in page:
            agents[agent.id] = {"capacity": agent.profile.capacity}
        if not token:
            break
    providers: dict[str, Row] = {}
    token = None
    while True:
        items, token = await list_providers(store, None, PAGE, token)
        for provider in items:
            body: dict[str, Any] = provider.body()
            providers[provider.id] = {
                "specialty": body.get("specialtyKey"),
                "timeZone": body.get("timeZone"),
                "slotMinutes": body.get("slotMinutes"),
            }
        if not token:
            break
    return {"queues": queues, "agents": agents, "providers": providers}
