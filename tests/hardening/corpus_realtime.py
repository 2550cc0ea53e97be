"""Bad requests to the negotiate endpoints (issue 13 part 5): each a 4xx problem that mints no URL
and writes nothing (not even an audit record)."""

from __future__ import annotations

from tests.conftest import token
from tests.hardening.corpus import ANON, case
from tests.hardening.world import AGENT, PATIENT

OTHER_PATIENT = token("Patient", sub="patient-sub-2", patient_id="p-2")
UNREGISTERED_AGENT = token("Agent", sub="agent-9")
R = "realtime"
REALTIME = [
    case(R, "patient negotiate, id with a space", 400, PATIENT, "GET /api/me/conversations/c%201/negotiate"),
    case(
        R,
        "patient negotiate, id of 101 characters",
        400,
        PATIENT,
        f"GET /api/me/conversations/{'c' * 101}/negotiate",
    ),
    case(R, "patient negotiate, id ..", 400, PATIENT, "GET /api/me/conversations/%2E%2E/negotiate"),
    case(
        R,
        "patient negotiate, another patient's conversation",
        404,
        OTHER_PATIENT,
        "GET /api/me/conversations/c-1/negotiate",
    ),
    case(
        R,
        "patient negotiate, no such conversation",
        404,
        PATIENT,
        "GET /api/me/conversations/c-none/negotiate",
    ),
    case(R, "patient negotiate as an agent", 403, AGENT, "GET /api/me/conversations/c-1/negotiate"),
    case(R, "patient negotiate without a token", 401, ANON, "GET /api/me/conversations/c-1/negotiate"),
    case(R, "agent negotiate as a patient", 403, PATIENT, "GET /api/agents/me/negotiate"),
    case(
        R, "agent negotiate, not a registered agent", 404, UNREGISTERED_AGENT, "GET /api/agents/me/negotiate"
    ),
    case(R, "supervisor negotiate as an agent", 403, AGENT, "GET /api/supervisor/negotiate"),
    case(R, "supervisor negotiate with a forged token", 401, "x.y.z", "GET /api/supervisor/negotiate"),
    case(R, "supervisor negotiate as a patient", 403, PATIENT, "GET /api/supervisor/negotiate"),
]
