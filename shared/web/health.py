"""Reachability of the store and the bus, for `/api/health` (load balancers and ops).

The endpoint needs no sign-in, so anyone can call it at any rate: a probe reaches Cosmos DB and
Service Bus at most once per PROBE_INTERVAL per worker, and requests that arrive while a probe is
running wait for that probe instead of starting their own. The result is kept whether it is ok or
failing: during an outage a flood of health calls must not hammer a dependency that is recovering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from shared.runtime import Runtime

CHECK_TIMEOUT_SECONDS = 3.0
PROBE_INTERVAL = timedelta(seconds=15)


class Check(BaseModel):
    status: Literal["ok", "failing"]
    backend: str
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, Check]


class HealthCache:
    """One per runtime (so per worker, and per test): the last report, when its probe started, and
    the probe in flight."""

    def __init__(self) -> None:
        self.report: Health | None = None
        self.probed_at: datetime | None = None
        self.probing: asyncio.Task[Health] | None = None

    async def get(self, runtime: Runtime) -> Health:
        now = runtime.clock.now()
        if self.report is not None and self.probed_at is not None and now - self.probed_at < PROBE_INTERVAL:
            return self.report
        if self.probing is None:
            self.probed_at = now
            self.probing = asyncio.ensure_future(self._probe(runtime))
        # shield: a caller that goes away must not cancel the probe the others are waiting for.
        return await asyncio.shield(self.probing)

    async def _probe(self, runtime: Runtime) -> Health:
        try:
            self.report = await probe(runtime)
            return self.report
        finally:
            self.probing = None


async def _check(backend: str, ping: Awaitable[None]) -> Check:
    try:
        await asyncio.wait_for(ping, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return Check(status="failing", backend=backend, error=type(exc).__name__)
    return Check(status="ok", backend=backend)


async def probe(runtime: Runtime) -> Health:
    """Ping the store and the bus now (no cache)."""
    settings = runtime.settings
    store, bus = await asyncio.gather(
        _check(settings.store, runtime.store.ping()),
        _check(settings.bus, runtime.bus.ping()),
    )
    ok = store.status == "ok" and bus.status == "ok"
    return Health(status="ok" if ok else "degraded", checks={"store": store, "bus": bus})


async def check_health(runtime: Runtime) -> Health:
    """The health report, probed at most once per PROBE_INTERVAL for this runtime."""
    if runtime.health is None:
        runtime.health = HealthCache()
    return await runtime.health.get(runtime)
