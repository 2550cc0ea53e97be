"""Platform endpoints: health (no authentication) and the generated OpenAPI document."""

from __future__ import annotations

import azure.functions as func

from shared.web.api import PUBLIC, ROUTES, Api, Call, Reply

bp = func.Blueprint()
api = Api(bp, tag="platform")


@api.route(
    "health",
    "GET",
    access=PUBLIC,
    summary="Store and bus reachability",
    response="shared.web.health:Health",
    also=((503, "The store or the bus is unreachable (same body)"),),
)
async def health(call: Call) -> Reply:
    """200 when the store and the bus answer, 503 (same body) when one does not."""
    from shared.web.health import check_health

    report = await check_health(call.runtime)
    return Reply(body=report, status=200 if report.status == "ok" else 503)


@api.route(
    "openapi.json",
    "GET",
    access=PUBLIC,
    summary="This API as OpenAPI 3.1",
    response="shared.web.openapi:OpenApiDocument",
)
async def openapi(call: Call) -> Reply:
    """Generated from the registered routes and their models: every operation with its
    parameters, headers, bodies, answers and the roles it needs (`x-roles`). No sign-in."""
    from shared.web.openapi import build_openapi  # JSON-schema generation only when asked

    return Reply(body=build_openapi(ROUTES, title="Patient Service Center API", version="0.1.0"))
