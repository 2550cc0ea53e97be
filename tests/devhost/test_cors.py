"""The dev host answers cross-origin requests as the Functions host on Flex Consumption does
(ASP.NET Core's CorsMiddleware with the site's allowed origins), from one setting,
PSC_CORS_ORIGINS; nothing is allowed unless listed."""

from __future__ import annotations

from pathlib import Path

import azure.functions as func
import httpx
import pytest

from devhost.config_files import HostConfig
from devhost.discovery import discover
from devhost.host import DevHost
from devhost.invocation import Invoker
from shared.kernel.clock import ManualClock
from tests.conftest import make_settings
from tests.devhost.conftest import new_app

PORTAL = "http://localhost:3000"
CONSOLE = "https://console.example.org"
PREFLIGHT = {
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "authorization, if-match",
}


def client(origins: str, tmp_path: Path) -> tuple[httpx.AsyncClient, list[str]]:
    calls: list[str] = []
    app = new_app()

    @app.route(route="profile", methods=["GET", "PUT", "OPTIONS"])
    async def profile(req: func.HttpRequest) -> func.HttpResponse:
        calls.append(req.method)
        return func.HttpResponse("{}", mimetype="application/json")

    settings = make_settings(tmp_path, PSC_CORS_ORIGINS=origins)
    host = DevHost(
        discover(app, {}),
        clock=ManualClock(),
        invoker=Invoker(),
        receiver=None,
        host_config=HostConfig(),
        cors_origins=settings.cors_allowed_origins,
    )
    transport = httpx.ASGITransport(app=host.asgi_app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver"), calls


def cors_headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.startswith("access-control-") or k == "vary"}


async def test_with_no_origin_listed_nothing_cross_origin_is_allowed(tmp_path: Path) -> None:
    http, calls = client("", tmp_path)
    async with http:
        preflight = await http.options("/api/profile", headers={"Origin": PORTAL, **PREFLIGHT})
        plain = await http.get("/api/profile", headers={"Origin": PORTAL})
    # The platform answers every preflight itself, with no allow headers for a refused origin.
    assert preflight.status_code == 204
    assert cors_headers(preflight) == {}
    assert plain.status_code == 200
    assert cors_headers(plain) == {}
    assert calls == ["GET"]


async def test_a_listed_origin_gets_its_preflight_answered_and_may_read_the_answer(tmp_path: Path) -> None:
    http, calls = client(PORTAL, tmp_path)
    async with http:
        preflight = await http.options("/api/profile", headers={"Origin": PORTAL, **PREFLIGHT})
        plain = await http.get("/api/profile", headers={"Origin": PORTAL})
    assert preflight.status_code == 204
    assert cors_headers(preflight) == {
        "access-control-allow-origin": PORTAL,
        "access-control-allow-headers": "authorization,if-match",
        "access-control-allow-methods": "PUT",
    }
    assert cors_headers(plain) == {"access-control-allow-origin": PORTAL}
    assert calls == ["GET"]  # the preflight never reaches the function


async def test_an_origin_not_listed_is_answered_without_cors_headers(tmp_path: Path) -> None:
    http, calls = client(f"{PORTAL},{CONSOLE}", tmp_path)
    async with http:
        preflight = await http.options(
            "/api/profile", headers={"Origin": "https://evil.example", **PREFLIGHT}
        )
        plain = await http.get("/api/profile", headers={"Origin": "https://evil.example"})
        allowed = await http.get("/api/profile", headers={"Origin": CONSOLE})
    assert (preflight.status_code, cors_headers(preflight)) == (204, {})
    assert (plain.status_code, cors_headers(plain)) == (200, {})
    # Several origins listed: the answer depends on the Origin, so caches are told.
    assert cors_headers(allowed) == {"access-control-allow-origin": CONSOLE, "vary": "Origin"}
    assert calls == ["GET", "GET"]


async def test_star_allows_every_origin_and_answers_star(tmp_path: Path) -> None:
    http, _ = client("*", tmp_path)
    async with http:
        plain = await http.get("/api/profile", headers={"Origin": "https://anywhere.example"})
        preflight = await http.options("/api/profile", headers={"Origin": PORTAL, **PREFLIGHT})
    assert cors_headers(plain) == {"access-control-allow-origin": "*"}
    assert preflight.headers["access-control-allow-origin"] == "*"


async def test_requests_without_an_origin_and_plain_options_reach_the_function(tmp_path: Path) -> None:
    http, calls = client(PORTAL, tmp_path)
    async with http:
        same_origin = await http.get("/api/profile")
        options = await http.options("/api/profile", headers={"Origin": PORTAL})
    assert cors_headers(same_origin) == {}
    assert options.status_code == 200
    assert calls == ["GET", "OPTIONS"]


async def test_unknown_routes_carry_the_same_cors_answer(tmp_path: Path) -> None:
    http, _ = client(PORTAL, tmp_path)
    async with http:
        missing = await http.get("/api/nope", headers={"Origin": PORTAL})
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == PORTAL


@pytest.mark.parametrize(
    ("origins", "expected"),
    [("HTTP://LocalHost:3000", ("http://localhost:3000",)), (f" {PORTAL} , {CONSOLE} ", (PORTAL, CONSOLE))],
)
def test_origins_are_compared_as_the_host_stores_them(
    origins: str, expected: tuple[str, ...], tmp_path: Path
) -> None:
    assert make_settings(tmp_path, PSC_CORS_ORIGINS=origins).cors_allowed_origins == expected
