"""A populated service for whole-API tests: the demo data, then records in every state an
operation needs to succeed (conversations waiting, offered, active; appointments; a link code),
made through the API itself as clients would, with a token for every role.

Served by the dev host's ASGI app (`devhost/http_host.py`) over the real registered functions
and an embedded runtime on a fixed clock. `SeededApp` builds it all in the ASGI lifespan, so the
runtime, the seeding and every later request share one event loop (whichever loop the client
that starts the lifespan runs it on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from devhost.discovery import discover
from devhost.http_host import HttpHost
from devhost.invocation import Invoker
from shared.kernel.clock import ManualClock
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import make_settings, registered_functions, token, trigger_settings

LINK_SIGNING_KEY = "world-link-signing-key-0123456789abcdef"
WEBHOOK_SECRET = "whsec_ZGV2LW9ubHktd2ViaG9vay1zZWNyZXQtY2hhbmdlLW1l"
# A Monday morning: the demo providers work today and the booking horizon is ahead.
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOST_SETTINGS = trigger_settings()

# One token per role; the subjects are the demo users' (shared/demo.py), so agents are registered.
TOKENS: dict[str, str] = {
    "Patient": token("Patient", sub="demo-patient-1", patient_id="p-demo-1"),
    "Agent": token("Agent", sub="demo-agent-1"),
    "Supervisor": token("Supervisor", sub="demo-supervisor"),
    "Administrator": token("Administrator", sub="demo-admin"),
    "Bot.Escalate": token("Bot.Escalate", sub="demo-health-bot"),
    "KnowledgeManager": token("KnowledgeManager", sub="demo-km"),
    "ClinicalUser": token("Agent", "ClinicalUser", sub="demo-agent-2"),
    "IntegrationAdmin": token("IntegrationAdmin", sub="demo-integration"),
}
# A patient signed in with a provider whose sign-in is not linked to a record yet.
UNLINKED_PATIENT = token("Patient", sub="new-patient-1")


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@dataclass
class World:
    """Ids of what the seeding made, by what an operation can do with them."""

    conversations: dict[str, str] = field(default_factory=dict)
    appointments: dict[str, str] = field(default_factory=dict)
    free_slots: list[str] = field(default_factory=list)
    link_code: str = ""
    consult: str = ""
    provisional: str = ""
    links: dict[str, str] = field(default_factory=dict)  # issue 14: one-use link tokens by use

    def ids(self, parameter: str) -> list[str]:
        """Real values for a path parameter: what a generated request may use instead of a
        random id, so fuzzing reaches records and not only 404s."""
        from shared.demo import DEMO_AGENTS, DEMO_PATIENTS, DEMO_QUEUES
        from shared.scheduling.api import DEMO_PROVIDERS

        known = {
            "patientId": [p["id"] for p in DEMO_PATIENTS],
            "providerId": list(DEMO_PROVIDERS),
            "queueId": list(DEMO_QUEUES),
            "agentId": list(DEMO_AGENTS),
            "conversationId": list(self.conversations.values()),
            "appointmentId": list(self.appointments.values()),  # by name: the ids are random
            "botConversationId": [f"world-{name}" for name in self.conversations],
            "articleId": ["world-article"],
            "scriptId": ["world-script"],
            "teamId": ["world-team"],
            "consultId": [self.consult] if self.consult else [],
        }
        return known.get(parameter, [])


async def _ok(response: httpx.Response) -> Any:
    assert response.is_success, (response.request.method, response.request.url.path, response.text)
    return response.json()


async def populate(client: httpx.AsyncClient, world: World) -> None:
    """Records in the states the operations need, made through the API."""
    # Agents with room for every offer below.
    for agent_id in ("demo-agent-1", "demo-agent-2", "demo-agent-3"):
        profile = await _ok(await client.get(f"/api/manage/agents/{agent_id}", headers=bearer("Supervisor")))
        body = {k: profile[k] for k in ("name", "skills", "languages", "queues")} | {"capacity": 20}
        await _ok(
            await client.put(f"/api/manage/agents/{agent_id}", json=body, headers=bearer("Administrator"))
        )
    # Conversations: escalated (waiting; the routing worker does not run here, so nothing moves
    # unless a request moves it), then offered or accepted through the supervisor's assign.
    plan = {
        "waiting": "waiting",
        "abandon": "waiting",
        "assign": "waiting",
        "transfer": "waiting",
        "force-close": "waiting",
        "end": "waiting",
        "accept": "offered",
        "decline": "offered",
        "message": "active",
        "close": "active",
        "archived": "active",
    }
    for name, state in plan.items():
        patient = "p-demo-1" if name in ("waiting", "abandon") else "p-demo-2"
        answer = await _ok(
            await client.post(
                "/api/escalations",
                json={
                    "botConversationId": f"world-{name}",
                    "patient": {"id": patient},
                    "reason": "Needs a person",
                    "triage": {"urgency": "routine"},
                    "transcript": [{"from": "patient", "text": "Hello", "timestamp": "2026-01-05T08:59:00Z"}],
                },
                headers=bearer("Bot.Escalate"),
            )
        )
        conversation_id = answer["conversationId"]
        world.conversations[name] = conversation_id
        if state in ("offered", "active"):
            await _ok(
                await client.post(
                    f"/api/supervisor/conversations/{conversation_id}/assign",
                    json={"agentId": "demo-agent-1"},
                    headers=bearer("Supervisor"),
                )
            )
        if state == "active":
            await _ok(
                await client.post(f"/api/conversations/{conversation_id}/accept", headers=bearer("Agent"))
            )
    # Closed by the supervisor; SeededApp archives its transcript (the consumer does not run here).
    await _ok(
        await client.post(
            f"/api/supervisor/conversations/{world.conversations['archived']}/close",
            json={},
            headers=bearer("Supervisor"),
        )
    )
    # Appointments of the demo patient with dr-nowak, booked by the patient.
    today = NOW.date()
    slots = await _ok(
        await client.get(
            "/api/providers/dr-nowak/slots",
            params={"from": str(today + timedelta(days=1)), "to": str(today + timedelta(days=7))},
            headers=bearer("Patient"),
        )
    )
    starts = [slot["start"] for slot in slots["slots"]]
    for name, start in zip(("read", "reschedule", "cancel", "status"), starts, strict=False):
        booked = await _ok(
            await client.post(
                "/api/appointments",
                json={"providerId": "dr-nowak", "start": start, "reason": "Check-up"},
                headers=bearer("Patient"),
            )
        )
        world.appointments[name] = booked["id"]
    world.free_slots = starts[4:]
    issued = await _ok(await client.post("/api/patients/p-demo-2/link-codes", headers=bearer("Agent")))
    world.link_code = issued["code"]
    # Issue 16: a team taking dr-nowak's consults (its card goes to RecordingWorkflows), a consult
    # in the active conversation, and a provisional record an unmatched escalation made.
    await _ok(
        await client.put(
            "/api/manage/teams/world-team",
            json={
                "name": "World team",
                "workflowUrl": WORKFLOW_URL,
                "outgoingToken": TEAMS_TOKEN,
                "providerIds": ["dr-nowak"],
            },
            headers=bearer("IntegrationAdmin"),
        )
    )
    consult = await _ok(
        await client.post(
            f"/api/conversations/{world.conversations['message']}/consults",
            json={"teamId": "world-team", "question": "Is ibuprofen fine with the new tablets?"},
            headers=bearer("Agent"),
        )
    )
    world.consult = consult["id"]
    await _ok(
        await client.post(
            "/api/escalations",
            json={
                "botConversationId": "world-provisional",
                "patient": {"name": "Nobody Known"},
                "reason": "Question",
                "triage": {"urgency": "routine"},
                "transcript": [],
            },
            headers=bearer("Bot.Escalate"),
        )
    )
    from shared.conversations.api import bot_key
    from shared.patients.matching import provisional_patient_id

    # The provisional id hashes the bot conversation's key, scoped to the calling bot.
    world.provisional = provisional_patient_id(bot_key("dev:demo-health-bot", "world-provisional"))


# A Workflows URL on Power Automate's domain (what a real team would give) and its outgoing
# webhook's token; nothing is posted there: `RecordingWorkflows` stands in for the poster.
WORKFLOW_URL = "https://prod-1.westeurope.logic.azure.com/workflows/world/triggers/manual/paths/invoke?sig=w"
TEAMS_TOKEN = "d29ybGQtdGVhbS1vdXRnb2luZy10b2tlbi0wMTIzNDU="


class RecordingWorkflows:
    """The Workflows poster of the world: keeps every card and accepts it (no network here)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, Any]] = []

    async def post(self, url: str, payload: Any) -> Any:
        from shared.kernel.callbacks import DeliveryResult

        self.posted.append((url, payload))
        return DeliveryResult(ok=True, reason="delivered", status=202)

    async def close(self) -> None:
        return None


class SeededApp:
    """The dev host's ASGI app over the registered functions, on a runtime built, seeded and
    populated at lifespan startup (and closed at shutdown)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.clock = ManualClock(NOW)
        self.world = World()
        self.runtime: Runtime | None = None
        self.host: HttpHost | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self.host is not None, "the lifespan has not started"
        await self.host(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.runtime is not None:
                    await self.runtime.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        from shared.demo import seed_demo

        # Negotiate signs hub URLs with the embedded hub's key; no hub runs here (no frame is sent).
        settings = make_settings(
            self.data_dir,
            PSC_WEBHOOK_SECRET=WEBHOOK_SECRET,
            PSC_REALTIME_KEY="world-realtime-key-" + "0" * 16,
            PSC_LINK_SIGNING_KEY=LINK_SIGNING_KEY,
        )
        self.runtime = await build_runtime(settings, clock=self.clock)

        class Indexed:  # `app.get_functions()` may run once per app: serve the suite's index
            def get_functions(self) -> list[Any]:
                return list(registered_functions().values())

        self.host = HttpHost(
            discover(Indexed(), HOST_SETTINGS).http, Invoker(self.runtime), route_prefix="api"
        )
        self.runtime._workflows = RecordingWorkflows()
        with use_runtime(self.runtime):
            await seed_demo(self.runtime)
        transport = httpx.ASGITransport(app=self.host)
        async with httpx.AsyncClient(transport=transport, base_url="http://world") as client:
            await populate(client, self.world)
        from shared.conversations.api import Transcripts

        rt = self.runtime
        transcripts = Transcripts(rt.store, rt.transcripts, rt.clock, rt.settings.message_retention_days)
        assert await transcripts.archive(self.world.conversations["archived"]) == "archived"
        from tests.api.followup_requests import seed_followups

        await seed_followups(self.runtime, self.world)
