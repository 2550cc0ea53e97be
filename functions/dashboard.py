"""The supervisor dashboard: its page, the files the page loads and how it signs in. Public: the
page and its files hold no data (it signs in and calls the KPI APIs); the configuration holds
nothing secret."""

from __future__ import annotations

import azure.functions as func

from shared.web.api import PUBLIC, Api, Call, Reply
from shared.web.dashboard.headers import STATIC_HEADERS

bp = func.Blueprint()
api = Api(bp, tag="dashboard")


@api.route(
    "dashboard",
    "GET",
    access=PUBLIC,
    summary="The supervisor dashboard (HTML page)",
    response="shared.web.dashboard.site:StaticFile",
    media_type="text/html",
    response_headers=STATIC_HEADERS,
)
async def dashboard_page(call: Call) -> Reply:
    """The dashboard page: live queue tiles, KPI charts and tables. It holds no data; it signs in
    (Entra with MSAL.js, or a pasted dev token in dev mode) and calls `/api/supervisor/kpis`,
    `/api/supervisor/kpis/live` and `/api/supervisor/negotiate`. Served with a strict
    Content-Security-Policy."""
    from shared.web.dashboard import site

    item = site.page()
    return Reply(
        body=item.body, content_type=item.content_type, headers=site.headers(item, call.runtime.settings)
    )


@api.route(
    "dashboard/assets/{asset}",
    "GET",
    access=PUBLIC,
    summary="A file the dashboard page loads",
    response="shared.web.dashboard.site:StaticFile",
    media_type="text/*",
    errors=(404,),
    response_headers=STATIC_HEADERS,
)
async def dashboard_asset(call: Call) -> Reply:
    """A script, style sheet or the sign-in redirect page of the dashboard, by file name: only the
    files the dashboard ships (404 for any other name), as `text/javascript`, `text/css` or
    `text/html`."""
    from shared.kernel.errors import NotFound
    from shared.web.dashboard import site

    item = site.asset(call.route("asset"))
    if item is None:
        raise NotFound("No such dashboard file.")
    return Reply(
        body=item.body, content_type=item.content_type, headers=site.headers(item, call.runtime.settings)
    )


@api.route(
    "dashboard/config.json",
    "GET",
    access=PUBLIC,
    summary="How the dashboard signs in",
    response="shared.web.dashboard.site:DashboardConfig",
)
async def dashboard_config(call: Call) -> Reply:
    """`{"authMode": "dev"}`: the page asks for a dev token; `{"authMode": "entra", "entra":
    {"clientId", "authority", "scopes"}}`: it signs in with MSAL.js against Entra ID. Nothing
    secret: a public client's id, the tenant's authority and the API's scope."""
    from shared.web.dashboard import site

    return Reply(body=site.config(call.runtime.settings))
