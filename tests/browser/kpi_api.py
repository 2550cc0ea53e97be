"""The dashboard's KPI endpoints are the real ones (`/api/supervisor/kpis`, `/kpis/live`, served
by the dev host from the consumer's buckets and routing's state). What stays here:

* `Calls`: every request the page makes to the supervisor API and every KPI answer it received,
  recorded from the browser's own network events (nothing is intercepted), so tests can check
  what the page asked for and what it was told;
* `answer_negotiate`: `GET /api/supervisor/negotiate` answered in the browser with a real client
  URL of the dev host's hub (minted with its key, so the page's WebSocket is the real one) until
  the app's own negotiate route lands (the realtime consumer's branch);
* `Api`: the test's own client of the real API, and `shown`, the page's formatting in Python
  (shared/web/dashboard/assets/format.js, locale en-US), so a test compares what the page shows
  with what the API answers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.async_api import Page, Route

KINDS = {
    "incoming": "count",
    "engaged": "count",
    "abandoned": "count",
    "shortAbandoned": "count",
    "transferred": "count",
    "firstWaitSeconds": "seconds",
    "asaSeconds": "seconds",
    "serviceLevel": "fraction",
    "abandonRate": "fraction",
    "transferRate": "fraction",
    "ahtSeconds": "seconds",
    "firstResponseSeconds": "seconds",
    "utilization": "fraction",
    "csat": "fraction",
    "nps": "score",
    "surveyResponseRate": "fraction",
    "reminderDeliveryRate": "fraction",
    "noShowRate": "fraction",
    "longestWaitSeconds": "seconds",
    "serviceLevelToday": "fraction",
    "waiting": "count",
    "active": "count",
    "agentsAvailable": "count",
}


def _digits(value: float, places: int) -> str:
    """Intl.NumberFormat's rounding (half away from zero), trailing zeros dropped."""
    text = f"{Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def clock(seconds: float) -> str:
    whole = max(0, int(Decimal(repr(seconds)).quantize(Decimal(1), rounding=ROUND_HALF_UP)))
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes:02d}:{rest:02d}"


def shown(name: str, value: Any) -> str:
    """What the page shows for `value` of the KPI or tile field `name`."""
    if value is None:
        return "—"
    kind = KINDS.get(name, "count")
    if kind == "seconds":
        return clock(value)
    if kind == "fraction":
        text = _digits(value * 100, 1)
        return f"{'0' if text == '-0' else text}%"
    if kind == "score":
        text = _digits(value, 1)
        return text if text in ("0", "-0") or text.startswith("-") else f"+{text}"
    return _digits(value, 0)


@dataclass
class Calls:
    """The page's requests to `/api/supervisor/…`: (path, query, Authorization)."""

    seen: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    answers: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def record(request: Any) -> None:
            url = urlsplit(request.url)
            if url.path.startswith("/api/supervisor/"):
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.seen.append((url.path, query, request.headers.get("authorization")))

        page.on("request", record)

        def answered(response: Any) -> None:
            url = urlsplit(response.url)
            if url.path.startswith("/api/supervisor/kpis") and response.ok:
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.answers.append((url.path, query, response))

        page.on("response", answered)

    def called(self, path: str) -> list[dict[str, str]]:
        return [query for called, query, _ in self.seen if called == path]

    async def received(self, path: str, **query: str) -> Any:
        """The last answer the page received for `path` with exactly `query`."""
        for called, asked, body in reversed(self.answers):
            if called == path and asked == query:
                return await body.json()
        raise AssertionError(f"the page never received {path} {query}")


async def answer_negotiate(page: Page, calls: Calls, url: Callable[[], Awaitable[str]]) -> None:
    async def negotiate(route: Route) -> None:
        await route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"url": await url()})
        )

    await page.route("**/api/supervisor/negotiate", negotiate)


@dataclass
class Api:
    """The real API as the test reads it (a supervisor), and as a bot and agents act on it."""

    base_url: str
    tokens: dict[str, str]

    async def get(self, path: str, role: str = "supervisor", **params: str) -> Any:
        async with httpx.AsyncClient(base_url=f"{self.base_url}/api", timeout=30) as client:
            answer = await client.get(path, params=params, headers=self._auth(role))
            assert answer.status_code == 200, answer.text
            return answer.json()

    async def send(self, method: str, path: str, role: str, body: Any) -> Any:
        async with httpx.AsyncClient(base_url=f"{self.base_url}/api", timeout=30) as client:
            answer = await client.request(method, path, json=body, headers=self._auth(role))
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else None

    def _auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}
