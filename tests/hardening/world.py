"""A small populated world for bad-input tests, served through the dev host's HTTP edge, and a
snapshot of everything the app can write (every table of every embedded SQLite file: the store's
documents in every container, the audit trail included, and the bus's messages and duplicate ids;
plus the archive's files), so a test can prove a refused request wrote nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from devhost.discovery import discover
from devhost.http_host import HttpHost
from devhost.invocation import Invoker
from shared.runtime import Runtime
from tests.conftest import registered_functions, token
from tests.routing.support import deliver, enqueue, presence, put_agent, put_queue, put_rules

ADMIN = token("Administrator", sub="admin-1")
AGENT = token("Agent", sub="agent-1")
SUPERVISOR = token("Supervisor", sub="supervisor-1")
PATIENT = token("Patient", sub="patient-sub-1", patient_id="p-1")
BOT = token("Bot.Escalate", sub="bot-1")
WEBHOOK_SECRET = "whsec_ZGV2LW9ubHktd2ViaG9vay1zZWNyZXQtY2hhbmdlLW1l"

# The manual clock starts on Monday 2026-01-05 09:00Z; Warsaw is UTC+1 in January.
WARSAW: dict[str, Any] = {
    "name": "Dr. Test Warsaw",
    "specialty": "cardiology",
    "timeZone": "Europe/Warsaw",
    "slotMinutes": 30,
    "weeklyHours": {d: [["08:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "bookingRules": {"maxDaysAhead": 30, "minNoticeMinutes": 60},
}
SLOT = "2026-01-06T07:00:00Z"  # Tuesday 08:00 in Warsaw
FREE_SLOT = "2026-01-06T08:00:00Z"


@dataclass
class World:
    runtime: Runtime
    client: httpx.AsyncClient
    appointment_id: str
    conversation_id: str

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.runtime.settings.data_dir)


def http_functions() -> tuple[Any, ...]:
    """The app's HTTP functions as the dev host serves them (the app is indexed once per session)."""
    app = SimpleNamespace(get_functions=lambda: list(registered_functions().values()))
    environ = {
        "PSC_SWEEP_SCHEDULE": "0 */5 * * * *",
        "ROUTING_QUEUE": "routing",
        "EVENTS_TOPIC": "events",
        "COSMOS_DATABASE": "psc",
        "FOLLOWUPS_SUBSCRIPTION": "followups",
        "FOLLOWUPS_QUEUE": "followups",
        "NOTIFICATION_REPORTS_QUEUE": "notification-reports",
    }
    return discover(app, environ).http


def edge_client(runtime: Runtime, **host_options: Any) -> httpx.AsyncClient:
    host = HttpHost(http_functions(), Invoker(runtime), **host_options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://testserver")


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Every row of every table of every SQLite file under `data_dir`, and every archived file."""
    found: dict[str, Any] = {}
    for path in sorted(data_dir.rglob("*.sqlite3")):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                found[f"{path.name}:{table}"] = sorted(map(repr, rows))
        finally:
            conn.close()
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file() and ".sqlite3" not in p.name):
        found[f"file:{path.relative_to(data_dir)}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


async def _ok(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code < 300, answer.text
    body: dict[str, Any] = answer.json() if answer.content else {}
    return body


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
async def world(runtime: Runtime) -> AsyncIterator[World]:
    runtime.settings = runtime.settings.model_copy(update={"webhook_secret": WEBHOOK_SECRET})
    async with edge_client(runtime) as client:
        await _ok(await client.put("/api/patients/p-1", headers=bearer(ADMIN), json={"name": "Anna Test"}))
        await _ok(await client.put("/api/manage/providers/dr-warsaw", headers=bearer(ADMIN), json=WARSAW))
        booked = await _ok(
            await client.post(
                "/api/appointments",
                headers=bearer(PATIENT),
                json={"providerId": "dr-warsaw", "start": SLOT, "reason": "Check-up"},
            )
        )
        await put_queue("general")
        await put_rules([], "general")
        await put_agent("agent-1", queues=["general"], capacity=3)
        await presence("agent-1", "available")
        await enqueue(runtime, "c-1", patient_id="p-1")
        await deliver(runtime)
        await _ok(await client.post("/api/conversations/c-1/accept", headers=bearer(AGENT)))
        yield World(runtime, client, booked["id"], "c-1")
