"""Health, OpenAPI and the composition of the function app."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.functions.decorators.http import HttpTrigger

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from shared.web.api import ROUTES
from tests.conftest import invoke, registered_functions

ROOT = Path(__file__).resolve().parents[2]


async def test_health_reports_store_and_bus(runtime: Runtime) -> None:
    answer = await invoke("health")
    assert answer.status == 200
    assert answer.json == {
        "status": "ok",
        "checks": {
            "store": {"status": "ok", "backend": "embedded"},
            "bus": {"status": "ok", "backend": "embedded"},
        },
    }


async def test_health_is_503_when_the_store_is_unreachable(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> None:
        raise ConnectionError("no route")

    monkeypatch.setattr(runtime.store, "ping", down)
    answer = await invoke("health")
    assert answer.status == 503
    assert answer.json["checks"]["store"] == {
        "status": "failing",
        "backend": "embedded",
        "error": "ConnectionError",
    }
    assert answer.json["checks"]["bus"]["status"] == "ok"


def count_pings(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, int], asyncio.Event]:
    """Count store and bus pings; the store's waits for the returned event."""
    pings = {"store": 0, "bus": 0}
    release = asyncio.Event()

    async def store_ping() -> None:
        pings["store"] += 1
        await release.wait()

    async def bus_ping() -> None:
        pings["bus"] += 1

    monkeypatch.setattr(runtime.store, "ping", store_ping)
    monkeypatch.setattr(runtime.bus, "ping", bus_ping)
    return pings, release


async def test_health_reaches_store_and_bus_once_per_15_seconds_whatever_the_request_rate(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings, release = count_pings(runtime, monkeypatch)

    calls = [asyncio.ensure_future(invoke("health")) for _ in range(200)]
    for _ in range(100):
        await asyncio.sleep(0)
    # All 200 are waiting on the one probe in flight.
    assert pings == {"store": 1, "bus": 1}
    assert not any(call.done() for call in calls)
    release.set()
    answers = await asyncio.gather(*calls)
    assert {a.status for a in answers} == {200}
    assert pings == {"store": 1, "bus": 1}

    clock.advance(14.9)
    await asyncio.gather(*(invoke("health") for _ in range(50)))
    assert pings == {"store": 1, "bus": 1}

    clock.advance(0.1)
    assert (await invoke("health")).status == 200
    assert pings == {"store": 2, "bus": 2}


async def test_a_failing_health_result_is_kept_too_so_an_outage_is_not_hammered(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    async def down() -> None:
        attempts.append("down")
        raise ConnectionError("no route")

    monkeypatch.setattr(runtime.store, "ping", down)
    answers = await asyncio.gather(*(invoke("health") for _ in range(20)))
    assert {a.status for a in answers} == {503}
    assert len(attempts) == 1

    async def back() -> None:
        attempts.append("up")

    monkeypatch.setattr(runtime.store, "ping", back)
    clock.advance(10)
    assert (await invoke("health")).status == 503  # still the kept result
    clock.advance(5)
    assert (await invoke("health")).status == 200
    assert attempts == ["down", "up"]


async def test_openapi_lists_every_registered_http_route(runtime: Runtime) -> None:
    answer = await invoke("openapi")
    assert answer.status == 200
    document: dict[str, Any] = answer.json
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert set(paths["/api/me/profile"]) == {"get", "put"}
    assert set(paths["/api/patients/{patientId}"]) == {"get", "put"}
    put = paths["/api/me/profile"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PatientProfile")
    assert {"400", "401", "403", "413", "415"} <= set(put["responses"])
    assert paths["/api/health"]["get"]["security"] == []
    schema = document["components"]["schemas"]["PatientProfile"]
    assert {"name", "timeZone", "email", "phone", "consent", "quietHours"} <= set(schema["properties"])

    registered = {
        (fn.get_trigger().route, method)
        for fn in registered_functions().values()
        if isinstance(fn.get_trigger(), HttpTrigger)
        for method in (str(m.value if hasattr(m, "value") else m) for m in fn.get_trigger().methods)
    }
    documented = {(spec.route, spec.method) for spec in ROUTES}
    assert registered == documented


def test_function_app_only_composes_blueprints() -> None:
    tree = ast.parse((ROOT / "function_app.py").read_text())
    calls = [
        node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]
    assert {c.func.attr for c in calls} <= {"FunctionApp", "register_functions"}  # type: ignore[attr-defined]
    modules = {p.stem for p in (ROOT / "functions").glob("*.py") if p.stem != "__init__"}
    registered = {c.args[0].value.id for c in calls if c.func.attr == "register_functions"}  # type: ignore[attr-defined]
    assert registered == modules


def test_importing_the_app_creates_no_client_and_reads_no_setting() -> None:
    probe = """
import os, sys
OURS = ('PSC_', 'COSMOS', 'ServiceBus', 'AZURE_', 'APPLICATIONINSIGHTS', 'ARCHIVE', 'EXPORTS')
class Spy(dict):
    def __getitem__(self, k):
        if k.startswith(OURS):
            raise AssertionError('setting read at import: ' + k)
        return super().__getitem__(k)
    def get(self, k, d=None):
        if k.startswith(OURS):
            raise AssertionError('setting read at import: ' + k)
        return super().get(k, d)
os.environ = Spy(os.environ)
import function_app
heavy = [m for m in ('azure.cosmos', 'azure.servicebus', 'azure.identity', 'azure.storage.blob',
                     'azure.communication', 'babel', 'uvicorn', 'starlette', 'devhost', 'sqlite3',
                     'pydantic', 'jwt', 'duckdb', 'pyarrow') if m in sys.modules]
assert not heavy, heavy
print('ok', len(function_app.app.get_functions()))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_no_http_route_starts_with_a_prefix_the_functions_host_reserves() -> None:
    """The host refuses to load a function whose route starts with `admin` or `runtime` (a plain
    prefix match after trimming `/`, case-insensitive); administration lives under `manage/`."""
    import json

    from devhost.discovery import RESERVED_ROUTE_PREFIXES

    checked = 0
    for function in registered_functions().values():
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding.get("type") != "httpTrigger":
                continue
            route = (binding.get("route") or function.get_function_name()).strip().strip("/").lower()
            assert not route.startswith(RESERVED_ROUTE_PREFIXES), (function.get_function_name(), route)
            checked += 1
    assert checked >= 30


async def test_the_app_adds_no_cors_headers_of_its_own(runtime: Runtime) -> None:
    """In Azure CORS is the platform's (siteConfig.cors); headers from the code would fight it."""
    origin = {"Origin": "https://portal.example.org"}
    answers = [
        await invoke("health", headers=origin),
        await invoke("openapi", headers=origin),
        await invoke("get_my_profile", headers=origin),  # 401 problem
    ]
    for answer in answers:
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers
    root = ROOT / "shared"
    for path in [*root.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        assert "access-control-allow" not in path.read_text().lower(), path
