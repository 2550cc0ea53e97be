"""Demo data for `python -m devhost --demo`: fictional patients, and dev tokens for each role so a
new user can call the API at once. Idempotent: seeding twice changes nothing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from shared.auth.dev_tokens import issue_dev_token
from shared.errors import Conflict
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
}


@dataclass
class DemoInfo:
    tokens: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


async def seed_demo(runtime: Runtime, base_url: str = "http://127.0.0.1:7071/api") -> DemoInfo:
    patients = runtime.store.container("patients")
    now = runtime.clock.now().isoformat().replace("+00:00", "Z")
    for patient in DEMO_PATIENTS:
        with contextlib.suppress(Conflict):  # already seeded
            await patients.create(
                {**patient, "type": "patient", "provisional": False, "createdAt": now, "updatedAt": now}
            )
    info = DemoInfo()
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
        "Tokens (8 h):",
        *(f"  {label}: {token}" for label, token in info.tokens.items()),
        "Set them with e.g.  export PATIENT_TOKEN=<patient token above>  NURSE_TOKEN=<clinical-agent token>",
    ]
    return info
