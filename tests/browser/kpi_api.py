"""Stand-ins for the KPI endpoints the dashboard calls, answered inside the browser with
Playwright's route interception, in exactly the shapes issue 15 fixes:

* `GET /api/supervisor/kpis?from=&to=&interval=&queueId=&agentId=` → `{"from", "to", "interval",
  "series": [{"start", …totals' fields}], "totals": {…18 KPIs, any of them null}}`;
* `GET /api/supervisor/kpis/live` → `{"asOf", "queues": [{"queueId", "name", "waiting",
  "longestWaitSeconds", "active", "agentsAvailable", "serviceLevelToday"}], "agents": [{"agentId",
  "presence", "load", "capacity"}]}`;
* `GET /api/supervisor/negotiate` → `{"url"}`: a real client URL of the dev host's embedded hub,
  minted with its key, so the page's WebSocket is the real one.

When those endpoints exist, `FakeKpiApi.install` goes and the tests read the same numbers from the
real API (after seeding events); every call is recorded here so the tests can also check what the
page asked for.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Page, Route

TOTALS: dict[str, Any] = {
    "incoming": 128,
    "engaged": 117,
    "abandoned": 6,
    "shortAbandoned": 3,
    "transferred": 9,
    "firstWaitSeconds": 61.4,
    "asaSeconds": 95.5,
    "serviceLevel": 0.8125,
    "abandonRate": 0.048,
    "transferRate": 0.0769,
    "ahtSeconds": 754.0,
    "firstResponseSeconds": 42.0,
    "utilization": 0.634,
    "csat": 0.9,
    "nps": 41.7,
    "surveyResponseRate": 0.35,
    "reminderDeliveryRate": 0.98,
    "noShowRate": None,  # no attended or no-show appointment in the range: "—", never 0
}
# What the page must show for TOTALS (locale en-US).
SHOWN_TOTALS = {
    "incoming": "128",
    "engaged": "117",
    "abandoned": "6",
    "shortAbandoned": "3",
    "transferred": "9",
    "firstWaitSeconds": "01:01",
    "asaSeconds": "01:36",
    "serviceLevel": "81.3%",
    "abandonRate": "4.8%",
    "transferRate": "7.7%",
    "ahtSeconds": "12:34",
    "firstResponseSeconds": "00:42",
    "utilization": "63.4%",
    "csat": "90%",
    "nps": "+41.7",
    "surveyResponseRate": "35%",
    "reminderDeliveryRate": "98%",
    "noShowRate": "—",
}
EMPTY_TOTALS: dict[str, Any] = dict.fromkeys(TOTALS)


def live_snapshot(as_of: str) -> dict[str, Any]:
    return {
        "asOf": as_of,
        "queues": [
            {
                "queueId": "urgent-care",
                "name": "Urgent care",
                "waiting": 3,
                "longestWaitSeconds": 125.0,
                "active": 4,
                "agentsAvailable": 1,
                "serviceLevelToday": 0.75,
            },
            {
                "queueId": "general",
                "name": "General",
                "waiting": 0,
                "longestWaitSeconds": 0.0,
                "active": 2,
                "agentsAvailable": 2,
                "serviceLevelToday": None,  # nothing answered or abandoned today
            },
        ],
        "agents": [
            {"agentId": "demo-agent-1", "presence": "busy", "load": 2, "capacity": 3},
            {"agentId": "demo-agent-2", "presence": "available", "load": 0, "capacity": 3},
        ],
    }


def series(start: str, buckets: int, step_seconds: int) -> list[dict[str, Any]]:
    from datetime import datetime, timedelta

    first = datetime.fromisoformat(start.replace("Z", "+00:00"))
    rows = []
    for n in range(buckets):
        stamp = (first + timedelta(seconds=n * step_seconds)).isoformat(timespec="milliseconds")
        quiet = n % 4 == 3  # a bucket with no conversation: ratios and averages are null
        rows.append(
            {
                **EMPTY_TOTALS,
                "start": stamp.replace("+00:00", "Z"),
                "incoming": 0 if quiet else 10 + n,
                "engaged": 0 if quiet else 9 + n,
                "abandoned": 0 if quiet else n % 2,
                "asaSeconds": None if quiet else 60.0 + 5 * n,
                "ahtSeconds": None if quiet else 600.0 + 10 * n,
                "serviceLevel": None if quiet else 0.8,
                "abandonRate": None if quiet else (n % 2) / (10 + n),
            }
        )
    return rows


STEPS = {"15m": 900, "1h": 3600, "1d": 86400}


@dataclass
class FakeKpiApi:
    """Answers the KPI endpoints in the page; `live` is what `/kpis/live` answers now (a test
    changes it to what the service would say after an event)."""

    negotiate_url: Callable[[], Awaitable[str]]
    live: dict[str, Any]
    calls: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)

    async def install(self, page: Page) -> None:
        await page.route("**/api/supervisor/kpis?*", self._kpis)
        await page.route("**/api/supervisor/kpis/live", self._live)
        await page.route("**/api/supervisor/negotiate", self._negotiate)

    def called(self, path: str) -> list[dict[str, str]]:
        return [query for called, query, _ in self.calls if called == path]

    def _record(self, route: Route) -> dict[str, str]:
        url = urlsplit(route.request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.calls.append((url.path, query, route.request.headers.get("authorization")))
        return query

    async def _kpis(self, route: Route) -> None:
        query = self._record(route)
        interval = query.get("interval", "1h")
        filtered = "queueId" in query or "agentId" in query
        body = {
            "from": query.get("from"),
            "to": query.get("to"),
            "interval": interval,
            "series": [] if filtered else series(query["from"], 8, STEPS[interval]),
            "totals": _breakdown(query) if filtered else TOTALS,
        }
        await _json(route, body)

    async def _live(self, route: Route) -> None:
        self._record(route)
        await _json(route, self.live)

    async def _negotiate(self, route: Route) -> None:
        self._record(route)
        await _json(route, {"url": await self.negotiate_url()})


def _breakdown(query: dict[str, str]) -> dict[str, Any]:
    """Per queue / per agent totals: distinct numbers per filter, so a row shows its own."""
    key = query.get("queueId") or query.get("agentId") or ""
    seed = sum(map(ord, key)) % 7
    return {
        **EMPTY_TOTALS,
        "incoming": 20 + seed,
        "engaged": 18 + seed,
        "abandoned": seed % 3,
        "asaSeconds": 30.0 + seed,
        "serviceLevel": 0.9,
        "abandonRate": None if seed % 2 else 0.05,
        "ahtSeconds": 300.0 + seed,
        "firstResponseSeconds": 20.0,
        "transferRate": 0.0,
        "utilization": 0.5,
        "csat": None,
    }


async def _json(route: Route, body: Any) -> None:
    await route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
