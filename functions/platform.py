"""Platform endpoints: health (no authentication) and the generated OpenAPI document."""

from __future__ import annotations

import asyncio
from typing import Literal

import azure.functions as func
from pydantic import BaseModel

from shared.web.api import PUBLIC, ROUTES, Api, Call, Reply
from shared.web.openapi import build_openapi

bp = func.Blueprint()
api = Api(bp, tag="platform")

CHECK_TIMEOUT_SECONDS = 3.0


class Check(BaseModel):
    status: Literal["ok", "failing"]
    backend: str
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, Check]


async def _check(backend: str, probe: object) -> Check:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except Exception as exc:
        return Check(status="failing", backend=backend, error=type(exc).__name__)
    return Check(status="ok", backend=backend)


@api.route("health", "GET", access=PUBLIC, summary="Store and bus reachability", response=Health)
async def health(call: Call) -> Reply:
    """200 when the store and the bus answer, 503 (same body) when one does not."""
    settings = call.runtime.settings
    store, bus = await asyncio.gather(
        _check(settings.store, call.runtime.store.ping()),
        _check(settings.bus, call.runtime.bus.ping()),
    )
    ok = store.status == "ok" and bus.status == "ok"
    body = Health(status="ok" if ok else "degraded", checks={"store": store, "bus": bus})
    return Reply(body=body, status=200 if ok else 503)


@api.route("openapi.json", "GET", access=PUBLIC, summary="This API as OpenAPI 3")
async def openapi(call: Call) -> Reply:
    return Reply(body=build_openapi(ROUTES, title="Patient Service Center API", version="0.1.0"))
