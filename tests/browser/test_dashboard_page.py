"""The supervisor dashboard in a real Chromium against the real app (the dev host with its demo
data and its consumers): sign-in, the live tiles and the hub, the KPI totals, charts and tables,
keyboard use and phone width.

The KPI endpoints are the real ones: conversations are escalated through the API as a bot would,
the relay publishes their events, the KPI consumer counts them and pushes the tiles, and the tests
compare what the page shows with what the API answers. Only `/api/supervisor/negotiate` is still
answered in the browser with a real URL of the dev host's hub (tests/browser/kpi_api.py), and one
test pushes hand-made frames through the hub to check how the page treats them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Page, expect

from shared.adapters.webpubsub_realtime import WebPubSubRealtime
from tests.browser.conftest import HUB_KEY, SCREENSHOTS, DevHost, Watch, open_page
from tests.browser.kpi_api import Api, Calls, answer_negotiate, shown

SUPERVISOR = "demo-supervisor"
QUEUE_COLUMNS = [
    "incoming",
    "engaged",
    "abandoned",
    "asaSeconds",
    "serviceLevel",
    "abandonRate",
    "ahtSeconds",
    "csat",
]
AGENT_COLUMNS = ["engaged", "ahtSeconds", "firstResponseSeconds", "transferRate", "utilization", "csat"]


def now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Session:
    page: Page
    watch: Watch
    calls: Calls
    realtime: WebPubSubRealtime
    host: DevHost

    async def push(self, delta: dict[str, Any]) -> None:
        await self.realtime.send_to_group("supervisors", delta)

    def tile(self, queue_id: str, field: str) -> Any:
        return self.page.locator(f'#tiles li[data-queue-id="{queue_id}"] dd[data-field="{field}"]')

    def whole(self) -> list[dict[str, str]]:
        return [
            q for q in self.calls.called("/api/supervisor/kpis") if "queueId" not in q and "agentId" not in q
        ]


@pytest.fixture
async def hub(dev_host: DevHost) -> AsyncIterator[WebPubSubRealtime]:
    """The dev host's hub, reached as the app reaches it (the SDK adapter with the hub's key)."""
    realtime = WebPubSubRealtime(f"http://127.0.0.1:{dev_host.hub_port}", "psc", access_key=HUB_KEY)
    yield realtime
    await realtime.close()


@pytest.fixture
def api(dev_host: DevHost) -> Api:
    return Api(dev_host.base_url, dev_host.tokens)


async def escalate(api: Api, name: str, urgency: str = "routine") -> str:
    answer = await api.send(
        "POST",
        "/escalations",
        "bot",
        {
            "botConversationId": f"browser-{name}-{now_stamp()}",
            "patient": {"id": "p-demo-2"},
            "reason": "Browser test",
            "triage": {"urgency": urgency},
            "transcript": [{"from": "patient", "text": "hello", "timestamp": now_stamp()}],
        },
    )
    return str(answer["conversationId"])


# Utilization counts logged-in agents' open intervals up to the moment of the call, so it moves
# between two reads by itself: the page's is compared with the answer the page itself received.
MOVING = "utilization"


def still(answer: dict[str, Any]) -> Any:
    drop = lambda row: {k: v for k, v in row.items() if k != MOVING}  # noqa: E731
    return drop(answer["totals"]), [drop(row) for row in answer["series"]]


async def settled(api: Api, params: dict[str, str], *, incoming: int = 0) -> dict[str, Any]:
    """The API's answer once the consumer has caught up (two reads alike, `incoming` reached)."""
    last: Any = None
    for _ in range(150):
        now = await api.get("/supervisor/kpis", **params)
        if last is not None and still(now) == still(last) and now["totals"]["incoming"] >= incoming:
            return dict(now)
        last = now
        await asyncio.sleep(0.2)
    raise AssertionError(f"the KPIs never settled: {last}")


async def expect_kpi(cell: Any, name: str, value: Any, received: dict[str, Any]) -> None:
    """The cell shows the API's `value`; a moving KPI, what the page received (which, with every
    other KPI equal to the API's, is the API's at the page's moment)."""
    await expect(cell).to_have_text(shown(name, received[name] if name == MOVING else value))


async def open_dashboard(
    browser: Any,
    host: DevHost,
    hub: WebPubSubRealtime,
    *,
    width: int = 1280,
    height: int = 900,
    timezone_id: str | None = None,
) -> Session:
    page, watch = await open_page(browser, width=width, height=height, timezone_id=timezone_id)
    calls = Calls()
    calls.watch(page)
    await answer_negotiate(page, calls, lambda: hub.client_url(SUPERVISOR, ["supervisors"]))
    await page.goto(f"{host.base_url}/api/dashboard")
    return Session(page, watch, calls, hub, host)


async def sign_in(session: Session) -> None:
    """As a person would: the token field has the focus; paste, Enter."""
    page = session.page
    await expect(page.get_by_label("Dev token")).to_be_focused()
    await page.keyboard.insert_text(session.host.tokens["supervisor"])
    await page.keyboard.press("Enter")
    await expect(page.locator("#live-status")).to_have_text("Live")
    await expect(page.locator("#agent-table tbody tr[data-agent-id]")).not_to_have_count(0)


async def test_a_supervisor_signs_in_with_a_dev_token_kept_in_the_tab_only(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    session = await open_dashboard(browser, dev_host, hub)
    page = session.page
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#board")).to_be_hidden()
    assert session.calls.seen == []  # nothing is asked before sign-in

    await sign_in(session)

    bearer = f"Bearer {dev_host.tokens['supervisor']}"
    assert {auth for _, _, auth in session.calls.seen} == {bearer}
    stored = await page.evaluate("[sessionStorage.length, localStorage.length, document.cookie]")
    assert stored == [1, 0, ""]
    # Another tab (a new context) has no token; a reload of this one keeps it.
    await page.reload()
    await expect(page.locator("#live-status")).to_have_text("Live")
    other, _ = await open_page(browser)
    await other.goto(f"{dev_host.base_url}/api/dashboard")
    await expect(other.get_by_label("Dev token")).to_be_visible()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Dev token")).to_be_focused()
    assert await page.evaluate("sessionStorage.length") == 0
    assert session.watch.errors == []


async def test_the_page_loads_clean_and_asks_no_other_host(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    session = await open_dashboard(browser, dev_host, hub)
    await sign_in(session)
    watch = session.watch
    assert watch.errors == [], watch.errors  # console errors, uncaught errors, CSP refusals
    assert watch.foreign(dev_host.base_url, dev_host.hub_origin) == []
    assert any(url.startswith(f"{dev_host.hub_origin}/client/hubs/psc?") for url in watch.sockets)
    assert any(url.endswith("/api/dashboard/assets/uPlot-1.6.32.iife.min.js") for url in watch.requests)
    assert not any("msal" in url for url in watch.requests)  # MSAL.js only with Entra sign-in


async def test_tiles_totals_and_tables_show_the_apis_numbers_with_a_dash_for_none(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime, api: Api
) -> None:
    # Real conversations: two routine ones (the demo agents are offered them), one accepted.
    first = await escalate(api, "numbers-1")
    await escalate(api, "numbers-2")
    for _ in range(100):
        mine = await api.get("/agents/me/conversations", "agent")
        offered = [c for c in mine.get("items", []) if c["id"] == first and c["status"] == "offered"]
        if offered:
            await api.send("POST", f"/conversations/{first}/accept", "agent", None)
            break
        await asyncio.sleep(0.2)
    session = await open_dashboard(browser, dev_host, hub)
    page = session.page
    await sign_in(session)
    await expect(page.locator('#totals dd[data-kpi="incoming"]')).not_to_have_text("")
    (whole,) = session.whole()
    assert whole["interval"] == "1h"
    expected = await settled(api, whole, incoming=2)

    # The numbers as they are now: Show again, and wait for its every answer (the whole service,
    # then each queue and agent: as many as the first showing asked).
    def shown_kpis() -> int:
        return sum(1 for path, _, _ in session.calls.answers if path == "/api/supervisor/kpis")

    first_showing = shown_kpis()
    await page.get_by_role("button", name="Show").click()
    for _ in range(100):
        if shown_kpis() >= 2 * first_showing:
            break
        await asyncio.sleep(0.1)
    assert shown_kpis() == 2 * first_showing
    await asyncio.gather(*(answer.finished() for _, _, answer in session.calls.answers))

    seen = await session.calls.received("/api/supervisor/kpis", **whole)
    assert still(seen) == still(expected)
    for name, value in expected["totals"].items():
        await expect_kpi(page.locator(f'#totals dd[data-kpi="{name}"]'), name, value, seen["totals"])
    assert expected["totals"]["noShowRate"] is None  # no appointment outcome: "—", never 0

    live = await api.get("/supervisor/kpis/live")
    for queue in live["queues"]:
        for field in ("waiting", "active", "agentsAvailable", "serviceLevelToday"):
            await expect(session.tile(queue["queueId"], field)).to_have_text(shown(field, queue[field]))
        await expect(page.locator(f'#tiles li[data-queue-id="{queue["queueId"]}"] h3')).to_have_text(
            queue["name"]
        )
        await expect(session.tile(queue["queueId"], "longestWaitSeconds")).to_have_text(
            re.compile(r"^\d+:\d\d")
        )

    # One call for the whole service, then one per queue and per agent, with the same range.
    queues = sorted(q["queueId"] for q in live["queues"])
    by_queue = [q for q in session.calls.called("/api/supervisor/kpis") if "queueId" in q]
    assert sorted({q["queueId"] for q in by_queue}) == queues
    assert all(q["from"] == whole["from"] for q in session.calls.called("/api/supervisor/kpis"))
    for queue in live["queues"]:
        totals = (await api.get("/supervisor/kpis", **whole, queueId=queue["queueId"]))["totals"]
        seen = (await session.calls.received("/api/supervisor/kpis", **whole, queueId=queue["queueId"]))[
            "totals"
        ]
        row = page.locator(f'#queue-table tr[data-queue-id="{queue["queueId"]}"]')
        await expect(row.locator("th")).to_have_text(queue["name"])
        for name in QUEUE_COLUMNS:
            await expect_kpi(row.locator(f'td[data-kpi="{name}"]'), name, totals[name], seen)
    for agent in live["agents"]:
        totals = (await api.get("/supervisor/kpis", **whole, agentId=agent["agentId"]))["totals"]
        seen = (await session.calls.received("/api/supervisor/kpis", **whole, agentId=agent["agentId"]))[
            "totals"
        ]
        row = page.locator(f'#agent-table tr[data-agent-id="{agent["agentId"]}"]')
        await expect(row.locator('td[data-live="presence"]')).to_have_text(agent["presence"])
        await expect(row.locator('td[data-live="load"]')).to_have_text(
            f"{agent['load']} / {agent['capacity']}"
        )
        for name in AGENT_COLUMNS:
            await expect_kpi(row.locator(f'td[data-kpi="{name}"]'), name, totals[name], seen)

    # The charts' numbers, as a table: a bucket per hour of the day, quiet ones showing "—".
    await page.get_by_text("Answer and handle times as a table").click()
    # Against the answers the page received for the range: the page shows the series of one of them
    # (the consumer may count a late event between two answers, and which of two answers in flight
    # the page keeps depends on their order), every bucket exactly.
    answers = [
        await answer.json()
        for path, query, answer in session.calls.answers
        if path == "/api/supervisor/kpis" and query == whole
    ]
    rows = page.locator("#chart-times details tbody tr")
    await expect(rows).to_have_count(len(answers[-1]["series"]))
    wanted = [[shown("asaSeconds", b["asaSeconds"]) for b in answer["series"]] for answer in answers]
    for _ in range(50):
        table = [text.strip() for text in await rows.locator("td:nth-of-type(1)").all_inner_texts()]
        if table in wanted:
            break
        await asyncio.sleep(0.1)
    assert table in wanted, (table, wanted)
    latest = answers[wanted.index(table)]
    assert any(b["asaSeconds"] is None for b in latest["series"])
    assert await page.locator("#chart-counts canvas").count() == 1
    assert session.watch.errors == []


async def test_a_real_escalation_moves_the_live_tile_without_a_reload(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime, api: Api
) -> None:
    # Urgent care's only agent steps away, so an urgent escalation waits there.
    await api.send("PUT", "/agents/me/presence", "clinical-agent", {"status": "offline"})
    session = await open_dashboard(browser, dev_host, hub)
    await sign_in(session)
    page = session.page
    await page.evaluate("window.stillTheSamePage = true")
    box = await page.locator('#tiles li[data-queue-id="urgent-care"]').bounding_box()
    waiting = session.tile("urgent-care", "waiting")
    await expect(waiting).not_to_have_text("")
    before = int(await waiting.inner_text())
    agent_row = page.locator('#agent-table tr[data-agent-id="demo-agent-2"]')
    await expect(agent_row.locator('td[data-live="presence"]')).to_have_text("offline")

    await escalate(api, "live", urgency="urgent")

    await expect(waiting).to_have_text(str(before + 1), timeout=15_000)
    await expect(session.tile("urgent-care", "longestWaitSeconds")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    assert await page.locator('#tiles li[data-queue-id="urgent-care"]').bounding_box() == box  # nothing moved
    # The agent comes back: its row follows the pushed presence, still without a reload.
    await api.send("PUT", "/agents/me/presence", "clinical-agent", {"status": "available"})
    await expect(agent_row.locator('td[data-live="presence"]')).not_to_have_text("offline", timeout=15_000)
    assert await page.evaluate("window.stillTheSamePage") is True
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert session.watch.errors == []


async def test_the_page_keeps_newer_tiles_and_rereads_for_a_queue_it_does_not_know(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    """Hand-made frames through the real hub: a frame older than the tile is ignored, a left-out
    field keeps its value, an unknown queue makes the page read `/kpis/live` again."""
    session = await open_dashboard(browser, dev_host, hub)
    await sign_in(session)
    sl = await session.tile("urgent-care", "serviceLevelToday").inner_text()
    await session.push(
        {
            "kind": "queue",
            "queueId": "urgent-care",
            "waiting": 41,
            "longestWaitSeconds": 130.0,
            "asOf": now_stamp(),
        }
    )
    await expect(session.tile("urgent-care", "waiting")).to_have_text("41")
    await expect(session.tile("urgent-care", "longestWaitSeconds")).to_have_text("02:10")
    await expect(session.tile("urgent-care", "serviceLevelToday")).to_have_text(sl)  # left out: kept
    await session.push(
        {"kind": "queue", "queueId": "urgent-care", "waiting": 1, "asOf": "2000-01-01T00:00:00.000Z"}
    )
    await session.push(
        {"kind": "agent", "agentId": "demo-agent-3", "presence": "away", "load": 1, "capacity": 3}
    )
    agent_row = session.page.locator('#agent-table tr[data-agent-id="demo-agent-3"]')
    await expect(agent_row.locator('td[data-live="load"]')).to_have_text("1 / 3")
    await expect(session.tile("urgent-care", "waiting")).to_have_text("41")

    reads = len(session.calls.called("/api/supervisor/kpis/live"))
    await session.push({"kind": "queue", "queueId": "not-a-queue-yet", "waiting": 1, "asOf": now_stamp()})
    for _ in range(100):
        if len(session.calls.called("/api/supervisor/kpis/live")) > reads:
            break
        await asyncio.sleep(0.1)
    assert len(session.calls.called("/api/supervisor/kpis/live")) == reads + 1
    assert session.watch.errors == []


async def test_after_the_hub_connection_drops_the_page_reconnects_and_rereads_the_live_state(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime, api: Api
) -> None:
    page, watch = await open_page(browser)
    calls = Calls()
    calls.watch(page)
    await answer_negotiate(page, calls, lambda: hub.client_url(SUPERVISOR, ["supervisors"]))
    connections: list[Any] = []
    negotiated: list[str] = []
    page.on(
        "request", lambda r: negotiated.append(r.url) if r.url.endswith("/api/supervisor/negotiate") else None
    )

    def through(ws: Any) -> None:  # the page's socket, relayed to the real hub
        ws.connect_to_server()
        connections.append(ws)

    await page.route_web_socket(re.compile(r"^ws://127\.0\.0\.1:\d+/client/hubs/psc\?.*"), through)
    await page.goto(f"{dev_host.base_url}/api/dashboard")
    session = Session(page, watch, calls, hub, dev_host)
    await sign_in(session)
    reads = len(calls.called("/api/supervisor/kpis/live"))

    await connections[-1].close()
    await expect(page.locator("#live-status")).to_have_text("Reconnecting…")
    await expect(page.locator("#live-status")).to_have_text("Live", timeout=10_000)
    assert len(calls.called("/api/supervisor/kpis/live")) > reads
    assert len(negotiated) == 2  # a fresh URL for the new connection
    live = await api.get("/supervisor/kpis/live")
    (general,) = [q for q in live["queues"] if q["queueId"] == "general"]
    await expect(session.tile("general", "active")).to_have_text(str(general["active"]))

    await session.push({"kind": "queue", "queueId": "general", "waiting": 8, "asOf": now_stamp()})
    await expect(session.tile("general", "waiting")).to_have_text("8")


async def test_every_control_is_reached_by_tab_and_the_range_picker_works_by_keyboard(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    session = await open_dashboard(browser, dev_host, hub, timezone_id="Europe/Warsaw")
    page = session.page
    await sign_in(session)

    await page.reload()  # signed in (the tab keeps the token); Tab starts at the top
    await expect(page.locator("#live-status")).to_have_text("Live")
    order: list[str] = []
    for _ in range(40):
        await page.keyboard.press("Tab")
        label = await page.evaluate(
            """() => {
                const e = document.activeElement;
                if (!e || e === document.body) return "(body)";
                const by = e.getAttribute("aria-labelledby");
                const named = e.labels?.[0]?.textContent || e.getAttribute("aria-label")
                    || (by && document.getElementById(by).textContent) || e.textContent;
                return `${e.tagName.toLowerCase()}:${named.trim()}`;
            }"""
        )
        if order and label == order[-1]:
            continue  # a date field's day, month and year parts
        if label in order:
            break
        order.append(label)
    assert order[:10] == [
        "a:Skip to content",
        "button:Sign out",
        "input:From",
        "input:To (inclusive)",
        "select:Interval",
        "button:Show",
        "summary:Conversations as a table",
        "summary:Answer and handle times as a table",
        "summary:Service level and abandon rate as a table",
        "div:By queue",
    ], order
    assert order[10] == "div:By agent", order
    visible_focus = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert visible_focus != "none"

    # The range picker by keyboard alone: type the days, arrow to "1 day", Enter on Show.
    await page.get_by_label("From", exact=True).focus()
    await page.keyboard.type("11022026")
    await tab_out_of(page, "range-from")
    await page.keyboard.type("11042026")
    await tab_out_of(page, "range-to")
    await expect(page.get_by_label("Interval", exact=True)).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(page.get_by_label("Interval", exact=True)).to_have_value("1d")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("#kpi-range")).to_have_text("2026-11-02 to 2026-11-04, by day")
    last = session.whole()[-1]
    # Whole local days (Warsaw is UTC+1 in November), half-open, as UTC instants.
    assert last == {"from": "2026-11-01T23:00:00.000Z", "to": "2026-11-04T23:00:00.000Z", "interval": "1d"}
    assert session.watch.errors == []


async def tab_out_of(page: Page, element_id: str) -> None:
    """Tab until the focus leaves the element (a date field's picker button takes a Tab too)."""
    for _ in range(5):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") != element_id:
            return
    raise AssertionError(f"Tab never left #{element_id}")


async def test_at_phone_width_nothing_overflows_and_screenshots_are_saved(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    wide = await open_dashboard(browser, dev_host, hub)
    await sign_in(wide)
    await wide.page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    phone = await open_dashboard(browser, dev_host, hub, width=375, height=800)
    await sign_in(phone)
    page = phone.page
    for summary in await page.locator("summary").all():
        await summary.click()
    await asyncio.sleep(0.3)  # the charts follow their boxes' width
    overflowing = await page.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            const inside = (e) => e.closest(".scroll");
            return [...document.querySelectorAll("body *")]
                .filter((e) => !inside(e) && e.getClientRects().length)
                .filter((e) => e.getBoundingClientRect().right > width + 0.5)
                .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + "." + e.className);
        }"""
    )
    assert overflowing == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await page.screenshot(path=str(SCREENSHOTS / "dashboard-375.png"), full_page=True)
    print(f"\nscreenshots: {SCREENSHOTS / 'dashboard.png'} and {SCREENSHOTS / 'dashboard-375.png'}")
    assert wide.watch.errors == []
    assert phone.watch.errors == []


async def test_with_entra_the_page_signs_in_through_msal_with_the_apis_scope(
    browser: Any, entra_host: DevHost
) -> None:
    """Nothing reaches Entra: the test answers the tenant's metadata and catches the redirect to
    the authorize endpoint, which must carry the API registration's client id, its
    `access_as_user` scope, PKCE and the redirect bridge page as redirect URI."""
    tenant, client = "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"
    login = "https://login.microsoftonline.com"
    page, watch = await open_page(browser)
    authorize: list[str] = []

    async def entra(route: Any) -> None:
        url = route.request.url
        if "/oauth2/v2.0/authorize" in url:
            authorize.append(url)
            await route.fulfill(status=200, content_type="text/html", body="<p>Entra sign-in</p>")
        elif "openid-configuration" in url:
            await route.fulfill(json=_openid_configuration(login, tenant))
        elif "discovery/instance" in url:
            await route.fulfill(json=_instance_discovery(login, tenant))
        else:
            await route.fulfill(status=404, body="")

    await page.route(f"{login}/**", entra)
    await page.goto(f"{entra_host.base_url}/api/dashboard")
    button = page.get_by_role("button", name="Sign in with Microsoft")
    await expect(button).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Entra sign-in")).to_be_visible()

    (url,) = authorize
    query = dict(re.findall(r"[?&]([^=&]+)=([^&]*)", url))
    from urllib.parse import unquote

    assert url.startswith(f"{login}/{tenant}/oauth2/v2.0/authorize?")
    assert query["client_id"] == client
    assert f"api://{client}/access_as_user" in unquote(query["scope"]).split(" ")
    assert unquote(query["redirect_uri"]) == f"{entra_host.base_url}/api/dashboard/assets/redirect.html"
    assert query["code_challenge_method"] == "S256"
    assert query["response_type"] == "code"
    assert not [e for e in watch.errors if "Content Security Policy" in e], watch.errors
    assert watch.foreign(entra_host.base_url, login) == []


def _openid_configuration(login: str, tenant: str) -> dict[str, Any]:
    base = f"{login}/{tenant}"
    return {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "jwks_uri": f"{login}/{tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "oid", "tid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


def _instance_discovery(login: str, tenant: str) -> dict[str, Any]:
    return {
        "tenant_discovery_endpoint": f"{login}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [
            {
                "preferred_network": "login.microsoftonline.com",
                "preferred_cache": "login.windows.net",
                "aliases": [
                    "login.microsoftonline.com",
                    "login.windows.net",
                    "login.microsoft.com",
                    "sts.windows.net",
                ],
            }
        ],
    }
