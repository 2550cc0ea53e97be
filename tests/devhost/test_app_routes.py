"""The real app's routes as the dev host resolves them (what `func start` does with the same
templates): a literal path, a parameter under it and another method on it reach their own
functions."""

from __future__ import annotations

from typing import Any

import httpx

from devhost.discovery import discover
from devhost.http_host import HttpHost
from devhost.invocation import Invoker
from shared.runtime import Runtime
from tests.conftest import registered_functions, token


class _IndexedApp:
    """`app.get_functions()` may run once per app: serve the functions the suite indexed."""

    def get_functions(self) -> list[Any]:
        return list(registered_functions().values())


async def test_appointments_search_read_and_book_resolve_to_their_own_functions(runtime: Runtime) -> None:
    settings = {
        "ROUTING_QUEUE": "routing",
        "PSC_SWEEP_SCHEDULE": "0 */5 * * * *",
        "EVENTS_TOPIC": "events",
        "COSMOS_DATABASE": "psc",
        "FOLLOWUPS_SUBSCRIPTION": "followups",
        "FOLLOWUPS_QUEUE": "followups",
        "NOTIFICATION_REPORTS_QUEUE": "notification-reports",
    }
    host = HttpHost(discover(_IndexedApp(), settings).http, Invoker(runtime), route_prefix="api")
    agent = {"Authorization": f"Bearer {token('Agent', sub='agent-1')}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://test") as client:
        search = await client.get("/api/appointments", params={"patientId": "p-1"}, headers=agent)
        read = await client.get("/api/appointments/a-123", headers=agent)
        book = await client.post("/api/appointments", json={}, headers=agent)
        unfinished = await client.get("/api/appointments", headers=agent)
    assert (search.status_code, search.json()) == (200, {"items": []})
    assert (read.status_code, read.json()["detail"]) == (404, "No such appointment.")
    assert book.status_code == 400
    assert {e["field"] for e in book.json()["errors"]} >= {"body.providerId", "body.start"}
    assert unfinished.status_code == 400
    assert "patientId" in unfinished.json()["errors"][0]["message"]
