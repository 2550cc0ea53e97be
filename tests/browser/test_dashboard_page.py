"""The supervisor dashboard in a real Chromium against the real app (the dev host with its demo
data): sign-in, the live tiles and the hub, the KPI totals, charts and tables, keyboard use and
phone width.

The KPI endpoints (`/api/supervisor/kpis`, `/kpis/live`, `/negotiate`) are answered in the
browser by `tests/browser/kpi_api.py` with the shapes issue 15 fixes, and the hub frames the
aggregation will send are pushed here through the dev host's real hub with the app's own adapter.
The step that builds those endpoints and the live consumer replaces `FakeKpiApi.install` with the
real API (seeded through real escalations and events), and the pushed frame with a real
escalation; every assertion on what the page shows stays as it is.
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
from tests.browser.kpi_api import SHOWN_TOTALS, FakeKpiApi, live_snapshot

SUPERVISOR = "demo-supervisor"


def now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Session:
    page: Page
    watch: Watch
    api: FakeKpiApi
    realtime: WebPubSubRealtime
    host: DevHost

    async def push(self, delta: dict[str, Any]) -> None:
        await self.realtime.send_to_group("supervisors", delta)

    def tile(self, queue_id: str, field: str) -> Any:
        return self.page.locator(f'#tiles li[data-queue-id="{queue_id}"] dd[data-field="{field}"]')


@pytest.fixture
async def hub(dev_host: DevHost) -> AsyncIterator[WebPubSubRealtime]:
    """The dev host's hub, reached as the app reaches it (the SDK adapter with the hub's key)."""
    realtime = WebPubSubRealtime(f"http://127.0.0.1:{dev_host.hub_port}", "psc", access_key=HUB_KEY)
    yield realtime
    await realtime.close()


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
    api = FakeKpiApi(
        negotiate_url=lambda: hub.client_url(SUPERVISOR, ["supervisors"]), live=live_snapshot(now_stamp())
    )
    await api.install(page)
    await page.goto(f"{host.base_url}/api/dashboard")
    return Session(page, watch, api, hub, host)


async def sign_in(session: Session) -> None:
    """As a person would: the token field has the focus; paste, Enter."""
    page = session.page
    await expect(page.get_by_label("Dev token")).to_be_focused()
    await page.keyboard.insert_text(session.host.tokens["supervisor"])
    await page.keyboard.press("Enter")
    await expect(page.locator("#live-status")).to_have_text("Live")
    await expect(page.locator('#totals dd[data-kpi="incoming"]')).to_have_text("128")
    await expect(page.locator("#agent-table tbody tr")).to_have_count(2)


async def test_a_supervisor_signs_in_with_a_dev_token_kept_in_the_tab_only(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    session = await open_dashboard(browser, dev_host, hub)
    page = session.page
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#board")).to_be_hidden()
    assert session.api.calls == []  # nothing is asked before sign-in

    await sign_in(session)

    bearer = f"Bearer {dev_host.tokens['supervisor']}"
    assert {auth for _, _, auth in session.api.calls} == {bearer}
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
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    session = await open_dashboard(browser, dev_host, hub)
    await sign_in(session)
    page = session.page

    urgent = {
        "waiting": "3",
        "longestWaitSeconds": "02:05",
        "active": "4",
        "agentsAvailable": "1",
        "serviceLevelToday": "75%",
    }
    for field, shown in urgent.items():
        await expect(session.tile("urgent-care", field)).to_have_text(shown)
    await expect(session.tile("general", "serviceLevelToday")).to_have_text("—")  # null, never 0
    await expect(session.tile("general", "longestWaitSeconds")).to_have_text("00:00")
    await expect(page.locator('#tiles li[data-queue-id="general"] h3')).to_have_text("General")

    for name, shown in SHOWN_TOTALS.items():
        await expect(page.locator(f'#totals dd[data-kpi="{name}"]')).to_have_text(shown)

    # One call for the whole service, then one per queue and per agent, with the same range.
    whole = [
        q for q in session.api.called("/api/supervisor/kpis") if "queueId" not in q and "agentId" not in q
    ]
    assert len(whole) == 1
    assert whole[0]["interval"] == "1h"
    assert sorted(
        q.get("queueId", "") for q in session.api.called("/api/supervisor/kpis") if "queueId" in q
    ) == [
        "general",
        "urgent-care",
    ]
    assert len([q for q in session.api.called("/api/supervisor/kpis") if "agentId" in q]) == 2
    assert all(q["from"] == whole[0]["from"] for q in session.api.called("/api/supervisor/kpis"))

    queue_row = page.locator('#queue-table tr[data-queue-id="urgent-care"]')
    await expect(queue_row.locator("th")).to_have_text("Urgent care")
    await expect(queue_row.locator('td[data-kpi="serviceLevel"]')).to_have_text("90%")
    await expect(queue_row.locator('td[data-kpi="csat"]')).to_have_text("—")
    agent_row = page.locator('#agent-table tr[data-agent-id="demo-agent-1"]')
    await expect(agent_row.locator('td[data-live="presence"]')).to_have_text("busy")
    await expect(agent_row.locator('td[data-live="load"]')).to_have_text("2 / 3")

    # The charts' numbers, as a table: 8 buckets, a quiet one showing "—" for its averages.
    await page.get_by_text("Answer and handle times as a table").click()
    rows = page.locator("#chart-times details tbody tr")
    await expect(rows).to_have_count(8)
    await expect(rows.nth(0).locator("td").nth(0)).to_have_text("01:00")
    await expect(rows.nth(3).locator("td").nth(1)).to_have_text("—")
    assert await page.locator("#chart-counts canvas").count() == 1
    assert session.watch.errors == []


async def test_a_hub_frame_moves_the_live_tile_without_a_reload(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    session = await open_dashboard(browser, dev_host, hub)
    await sign_in(session)
    page = session.page
    await page.evaluate("window.stillTheSamePage = true")
    box = await page.locator('#tiles li[data-queue-id="urgent-care"]').bounding_box()

    # What the live consumer sends when an escalation joins the urgent-care queue.
    await session.push(
        {
            "kind": "queue",
            "queueId": "urgent-care",
            "waiting": 4,
            "longestWaitSeconds": 130.0,
            "active": 4,
            "agentsAvailable": 0,
            "asOf": now_stamp(),
        }
    )
    await expect(session.tile("urgent-care", "waiting")).to_have_text("4")
    await expect(session.tile("urgent-care", "longestWaitSeconds")).to_have_text("02:10")
    await expect(session.tile("urgent-care", "agentsAvailable")).to_have_text("0")
    await expect(session.tile("urgent-care", "serviceLevelToday")).to_have_text("75%")  # left out: kept
    assert await page.locator('#tiles li[data-queue-id="urgent-care"]').bounding_box() == box  # nothing moved

    # A frame older than what is shown changes nothing; an agent's presence reaches its row.
    await session.push(
        {"kind": "queue", "queueId": "urgent-care", "waiting": 1, "asOf": "2000-01-01T00:00:00.000Z"}
    )
    await session.push(
        {"kind": "agent", "agentId": "demo-agent-2", "presence": "busy", "load": 1, "capacity": 3}
    )
    agent_row = page.locator('#agent-table tr[data-agent-id="demo-agent-2"]')
    await expect(agent_row.locator('td[data-live="presence"]')).to_have_text("busy")
    await expect(agent_row.locator('td[data-live="load"]')).to_have_text("1 / 3")
    await expect(session.tile("urgent-care", "waiting")).to_have_text("4")

    # A queue the page does not know yet: it re-reads the live state and shows it.
    reads = len(session.api.called("/api/supervisor/kpis/live"))
    session.api.live["queues"].append(
        {
            "queueId": "spanish",
            "name": "Spanish",
            "waiting": 1,
            "longestWaitSeconds": 12.0,
            "active": 0,
            "agentsAvailable": 1,
            "serviceLevelToday": 1.0,
        }
    )
    await session.push({"kind": "queue", "queueId": "spanish", "waiting": 1, "asOf": now_stamp()})
    await expect(session.tile("spanish", "serviceLevelToday")).to_have_text("100%")
    assert len(session.api.called("/api/supervisor/kpis/live")) == reads + 1

    assert await page.evaluate("window.stillTheSamePage") is True
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert session.watch.errors == []


async def test_after_the_hub_connection_drops_the_page_reconnects_and_rereads_the_live_state(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    page, watch = await open_page(browser)
    api = FakeKpiApi(
        negotiate_url=lambda: hub.client_url(SUPERVISOR, ["supervisors"]), live=live_snapshot(now_stamp())
    )
    await api.install(page)
    connections: list[Any] = []

    def through(ws: Any) -> None:  # the page's socket, relayed to the real hub
        ws.connect_to_server()
        connections.append(ws)

    await page.route_web_socket(re.compile(r"^ws://127\.0\.0\.1:\d+/client/hubs/psc\?.*"), through)
    await page.goto(f"{dev_host.base_url}/api/dashboard")
    session = Session(page, watch, api, hub, dev_host)
    await sign_in(session)
    reads = len(api.called("/api/supervisor/kpis/live"))

    api.live["queues"][0]["waiting"] = 7  # changed while the page was away
    await connections[-1].close()
    await expect(page.locator("#live-status")).to_have_text("Reconnecting…")
    await expect(page.locator("#live-status")).to_have_text("Live", timeout=10_000)
    await expect(session.tile("urgent-care", "waiting")).to_have_text("7")
    assert len(api.called("/api/supervisor/kpis/live")) > reads
    assert len(api.called("/api/supervisor/negotiate")) == 2  # a fresh URL for the new connection

    await session.push({"kind": "queue", "queueId": "urgent-care", "waiting": 8, "asOf": now_stamp()})
    await expect(session.tile("urgent-care", "waiting")).to_have_text("8")


async def test_every_control_is_reached_by_tab_and_the_range_picker_works_by_keyboard(
    browser: Any, dev_host: DevHost, hub: WebPubSubRealtime
) -> None:
    session = await open_dashboard(browser, dev_host, hub, timezone_id="Europe/Warsaw")
    page, api = session.page, session.api
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
    last = [q for q in api.called("/api/supervisor/kpis") if "queueId" not in q and "agentId" not in q][-1]
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
