"""Reachability of the store and the bus, for `/api/health` (load balancers and ops)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal

from pydantic import BaseModel

from shared.runtime import Runtime

CHECK_TIMEOUT_SECONDS = 3.0


class Check(BaseModel):
    status: Literal["ok", "failing"]
    backend: str
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, Check]


async def _check(backend: str, probe: Awaitable[None]) -> Check:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return Check(status="failing", backend=backend, error=type(exc).__name__)
    return Check(status="ok", backend=backend)


async def check_health(runtime: Runtime) -> Health:
    settings = runtime.settings
    store, bus = await asyncio.gather(
        _check(settings.store, runtime.store.ping()),
        _check(settings.bus, runtime.bus.ping()),
    )
    ok = store.status == "ok" and bus.status == "ok"
    return Health(status="ok" if ok else "degraded", checks={"store": store, "bus": bus})
