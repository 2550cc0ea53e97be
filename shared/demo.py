"""Demo data for `python -m devhost --demo`: fictional patients, and dev tokens for each role so a
new user can call the API at once. Idempotent: seeding twice changes nothing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from shared.auth.dev_tokens import issue_dev_token
from shared.kernel.catalog import PATIENTS
from shared.kernel.errors import Conflict
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.runtime import Runtime

DEMO_PATIENTS: list[dict[str, Any]] = [
    {
        "id": "p-demo-1",
        "name": "Anna Demo",
        "language": "pl",
        "timeZone": "Europe/Warsaw",
        "email": "anna.demo@example.org",
        "phone": "+48601000001",
        "preferredChannel": "sms",
        "consent": {"sms": True, "email": True},
        "quietHours": {"start": "21:00", "end": "08:00"},
        "dateOfBirth": "1985-04-12",
        "clinicalNotes": "Demo record: fictional patient.",
    },
    {
        "id": "p-demo-2",
        "name": "Ben Demo",
        "language": "en",
        "timeZone": "America/New_York",
        "email": "ben.demo@example.org",
        "phone": "+12025550142",
        "preferredChannel": "email",
        "consent": {"sms": False, "email": True},
        "quietHours": None,
        "dateOfBirth": "1972-11-30",
        "clinicalNotes": None,
    },
]

DEMO_USERS: dict[str, dict[str, Any]] = {
    "patient": {"sub": "demo-patient-1", "roles": ["Patient"], "patient_id": "p-demo-1", "name": "Anna Demo"},
    "agent": {"sub": "demo-agent-1", "roles": ["Agent"], "name": "Demo Agent"},
    "clinical-agent": {"sub": "demo-agent-2", "roles": ["Agent", "ClinicalUser"], "name": "Demo Nurse"},
    "supervisor": {"sub": "demo-supervisor", "roles": ["Supervisor"], "name": "Demo Supervisor"},
    "administrator": {"sub": "demo-admin", "roles": ["Administrator"], "name": "Demo Admin"},
    "bot": {"sub": "demo-health-bot", "roles": ["Bot.Escalate"], "name": "Demo Health Bot"},
}

# Routing that works at once: four queues served by priority, rules on urgency, intent and
# language, and the demo agents present and available (their ids are the demo tokens' `sub`).
DEMO_QUEUES: dict[str, dict[str, Any]] = {
    "urgent-care": {
        "name": "Urgent care",
        "priority": 1,
        "skillMatch": "exact-then-closest",
        "exactMatchTimeoutSeconds": 30,
        "requiredSkills": {"triage": 3},
        "serviceLevelSeconds": 30,
        "acceptTimeoutSeconds": 45,
    },
    "scheduling": {"name": "Scheduling", "priority": 50, "assignmentMethod": "round-robin"},
    "spanish": {"name": "Spanish line", "priority": 40},
    "general": {
        "name": "General",
        "priority": 100,
        "assignmentMethod": "most-idle",
        "overflow": {
            "maxWaiting": 50,
            "action": "end",
            "message": "All agents are busy; we will call you back.",
        },
    },
}
DEMO_RULES: dict[str, Any] = {
    "rules": [
        {"when": {"urgency": ["emergency", "urgent"]}, "queueId": "urgent-care", "skills": {"triage": 3}},
        {
            "when": {"context": {"intent": "appointment"}},
            "queueId": "scheduling",
            "skills": {"scheduling": 2},
        },
        {"when": {"language": ["es"]}, "queueId": "spanish"},
    ],
    "fallbackQueueId": "general",
}
DEMO_AGENTS: dict[str, dict[str, Any]] = {
    "demo-agent-1": {
        "name": "Demo Agent",
        "skills": {"scheduling": 4},
        "languages": ["en", "pl"],
        "capacity": 3,
        "queues": ["scheduling", "general"],
    },
    "demo-agent-2": {
        "name": "Demo Nurse",
        "skills": {"triage": 5},
        "languages": ["en"],
        "capacity": 2,
        "queues": ["urgent-care", "general"],
    },
    "demo-agent-3": {
        "name": "Demo Agente",
        "skills": {"scheduling": 2},
        "languages": ["es", "en"],
        "capacity": 2,
        "queues": ["spanish", "general"],
    },
}


async def seed_routing_demo(runtime: Runtime) -> list[str]:
    """Queues, rules and agents, each created only if absent: seeding again never overwrites what
    a user changed since (a queue's settings, the rules, an agent's profile or presence)."""
    from shared.kernel.errors import NotFound
    from shared.routing.api import (
        AgentProfile,
        Assignment,
        Presence,
        QueueSettings,
        RoutingDirectory,
        RoutingRules,
    )

    directory = RoutingDirectory(runtime.store)
    now = runtime.clock.now()
    for queue_id, settings in DEMO_QUEUES.items():
        if await directory.queue_doc(queue_id) is None:
            await directory.put_queue(queue_id, QueueSettings.model_validate(settings), now)
    if await directory.rules() is None:
        await directory.put_rules(RoutingRules.model_validate(DEMO_RULES), now)
    assignment = Assignment(runtime.store, runtime.bus, runtime.clock)
    for agent_id, profile in DEMO_AGENTS.items():
        try:
            await directory.agent_doc(agent_id)
            continue
        except NotFound:
            pass
        await directory.put_agent(agent_id, AgentProfile.model_validate(profile), now)
        await assignment.set_presence(agent_id, Presence.AVAILABLE)
    return [
        f"Routing: queues {', '.join(DEMO_QUEUES)}; agents {', '.join(DEMO_AGENTS)} "
        "(available when first seeded).",
    ]


@dataclass
class DemoInfo:
    tokens: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


async def seed_demo(
    runtime: Runtime, base_url: str = "http://127.0.0.1:7071/api", *, history: bool = False
) -> DemoInfo:
    """Patients, providers, routing and tokens; with `history` (the dev host's `--demo`) also a week
    of history made through the services (shared/demo_week.py) when the store is fresh."""
    from shared.patients.api import PatientDocument, index_patient

    patients = Stored(runtime.store, PATIENTS, PatientDocument)
    now = stamp(runtime.clock.now())

    for patient in DEMO_PATIENTS:
        doc = PatientDocument.model_validate(
            {**patient, "provisional": False, "createdAt": now, "updatedAt": now}
        )
        with contextlib.suppress(Conflict):  # already seeded
            await patients.create(doc)
        await index_patient(runtime.store, doc)  # so the webhook can match them by e-mail/phone
    info = DemoInfo()
    from shared.demo_week import seed_demo_week
    from shared.scheduling.api import seed_scheduling_demo

    scheduling = await seed_scheduling_demo(runtime, base_url=base_url)
    # The week before the routing demo: it seeds queues and agents at its start, so the agents'
    # history comes before their live presence (a store seeded before gets no week).
    week = await seed_demo_week(runtime, seed_routing_demo) if history else []
    info.lines += await seed_routing_demo(runtime)
    info.lines += scheduling + week
    secret = runtime.settings.dev_jwt_secret
    if runtime.settings.auth_mode != "dev" or not secret:
        info.lines.append("Demo tokens need PSC_AUTH_MODE=dev.")
        return info
    for label, user in DEMO_USERS.items():
        info.tokens[label] = issue_dev_token(secret, **user)
    info.lines += [
        f"Demo data: {len(DEMO_PATIENTS)} fictional patients (p-demo-1, p-demo-2).",
        "Try:",
        f"  curl {base_url}/health",
        f'  curl -H "Authorization: Bearer $PATIENT_TOKEN" {base_url}/me/profile',
        f'  curl -H "Authorization: Bearer $NURSE_TOKEN" {base_url}/patients/p-demo-1',
        f'  curl -H "Authorization: Bearer $BOT_TOKEN" -H "Content-Type: application/json" '
        f'-d \'{{"botConversationId": "demo-1", "patient": {{"id": "p-demo-2"}}, '
        f'"reason": "Chest pain", "triage": {{"urgency": "urgent"}}, '
        f'"transcript": []}}\' {base_url}/escalations',
        f'  curl -H "Authorization: Bearer $NURSE_TOKEN" {base_url}/agents/me/conversations',
        "Tokens (8 h):",
        *(f"  {label}: {token}" for label, token in info.tokens.items()),
        "Set them with e.g.  export PATIENT_TOKEN=<patient token above>  NURSE_TOKEN=<clinical-agent token>"
        "  BOT_TOKEN=<bot token>",
    ]
    return info
