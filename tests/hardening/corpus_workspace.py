"""The bad-input corpus for issue 16's routes (knowledge, scripts, Teams consults, record hygiene):
each a 4xx problem that changes nothing. The world's conversation `c-1` is held by `agent-1`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from tests.conftest import token
from tests.hardening.corpus import ANON, Case, case
from tests.hardening.world import ADMIN, AGENT, PATIENT, SUPERVISOR

KM = token("KnowledgeManager", sub="km-1")
INTEGRATION = token("IntegrationAdmin", sub="ia-1")
OTHER_AGENT = token("Agent", sub="agent-9")
ARTICLE = {"title": "Booking", "body": "Choose a slot.", "language": "en", "status": "published"}
SCRIPT = {"name": "Welcome", "language": "en", "steps": [{"type": "text", "text": "Hello"}]}
TEAM = {"name": "Cardiology", "workflowUrl": "https://prod-1.westeurope.logic.azure.com/workflows/1"}
REPLY = {"type": "message", "id": "1700000000001", "text": "<at>PSC</at> K7M3-Q9PX fine"}
A = "PUT /api/knowledge/articles/a-1"
S = "PUT /api/manage/scripts/s-1"
T = "PUT /api/manage/teams/t-1"
C = "POST /api/conversations/c-1/consults"
R = "POST /api/teams/consult-replies"
M = "POST /api/patients/p-1/merge"
LOG = "GET /api/patients/p-1/access-log?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"


def hmac_of(body: dict[str, Any], key: bytes = b"not-the-configured-token-0123") -> dict[str, str]:
    digest = hmac.new(key, json.dumps(body).encode(), hashlib.sha256).digest()
    return {"Authorization": "HMAC " + base64.b64encode(digest).decode()}


K = "workspace"
WORKSPACE: list[Case] = [
    # Knowledge
    case(K, "article with an unknown status", 400, KM, A, {**ARTICLE, "status": "live"}),
    case(K, "article title over two lines", 400, KM, A, {**ARTICLE, "title": "a\nb"}),
    case(K, "article body over 20,000 characters", 400, KM, A, {**ARTICLE, "body": "x" * 20_001}),
    case(K, "article in no language", 400, KM, A, {**ARTICLE, "language": "english"}),
    case(K, "article tags as a string", 400, KM, A, {**ARTICLE, "tags": "portal"}),
    case(K, "article with a version of its own", 400, KM, A, {**ARTICLE, "version": 7}),
    case(K, "article written by an agent", 403, AGENT, A, ARTICLE),
    case(K, "article with a malformed If-Match", 400, KM, A, ARTICLE, headers={"If-Match": "v1"}),
    case(K, "search without a question", 400, AGENT, "GET /api/knowledge/search?q="),
    case(K, "search with a control character", 400, AGENT, "GET /api/knowledge/search?q=a%07b"),
    case(K, "search in no language", 400, AGENT, "GET /api/knowledge/search?q=x&language=xx_yy"),
    case(K, "search with q twice", 400, AGENT, "GET /api/knowledge/search?q=a&q=b"),
    case(K, "search by a patient", 403, PATIENT, "GET /api/knowledge/search?q=password"),
    case(
        K,
        "suggestions for another agent's conversation",
        404,
        OTHER_AGENT,
        "GET /api/conversations/c-1/suggestions",
    ),
    case(K, "suggestions for a patient", 403, PATIENT, "GET /api/conversations/c-1/suggestions"),
    case(K, "article sent without its id", 400, AGENT, "POST /api/conversations/c-1/articles", {}),
    case(
        K, "unknown article sent", 422, AGENT, "POST /api/conversations/c-1/articles", {"articleId": "a-404"}
    ),
    case(
        K,
        "article sent by another agent",
        404,
        OTHER_AGENT,
        "POST /api/conversations/c-1/articles",
        {"articleId": "a-1"},
    ),
    case(
        K,
        "article sent by a patient",
        403,
        PATIENT,
        "POST /api/conversations/c-1/articles",
        {"articleId": "a-1"},
    ),
    # Scripts
    case(
        K,
        "script calling itself",
        400,
        ADMIN,
        S,
        {**SCRIPT, "steps": [{"type": "script", "scriptId": "s-1"}]},
    ),
    case(
        K,
        "script with an unknown placeholder",
        400,
        ADMIN,
        S,
        {**SCRIPT, "steps": [{"type": "text", "text": "{patient.ssn}"}]},
    ),
    case(K, "script with no steps", 400, ADMIN, S, {**SCRIPT, "steps": []}),
    case(
        K,
        "script sending no article",
        400,
        ADMIN,
        S,
        {**SCRIPT, "steps": [{"type": "action", "action": "send-article"}]},
    ),
    case(K, "script with a priority as text", 400, ADMIN, S, {**SCRIPT, "priority": "1"}),
    case(K, "script written by an agent", 403, AGENT, S, SCRIPT),
    case(K, "script named like the index", 400, ADMIN, "PUT /api/manage/scripts/_index", SCRIPT),
    case(K, "a conversation's script for a supervisor", 403, SUPERVISOR, "GET /api/conversations/c-1/script"),
    case(
        K, "the script of another agent's conversation", 404, OTHER_AGENT, "GET /api/conversations/c-1/script"
    ),
    # Teams and consults
    case(
        K,
        "team posting to another host",
        400,
        INTEGRATION,
        T,
        {**TEAM, "workflowUrl": "https://evil.example.org/x"},
    ),
    case(
        K,
        "team posting over http",
        400,
        INTEGRATION,
        T,
        {**TEAM, "workflowUrl": "http://prod-1.westeurope.logic.azure.com/x"},
    ),
    case(K, "new team without its Workflows URL", 400, INTEGRATION, T, {"name": "Cardiology"}),
    case(
        K,
        "team token that is not base64",
        400,
        INTEGRATION,
        T,
        {**TEAM, "outgoingToken": "not base64 at all!"},
    ),
    case(K, "team of an unknown provider", 422, INTEGRATION, T, {**TEAM, "providerIds": ["dr-nobody"]}),
    case(K, "team configured by an administrator", 403, ADMIN, T, TEAM),
    case(
        K,
        "consult naming a team and a provider",
        400,
        AGENT,
        C,
        {"teamId": "t", "providerId": "p", "question": "q"},
    ),
    case(K, "consult of an unknown team", 422, AGENT, C, {"teamId": "t-9", "question": "Dose?"}),
    case(K, "consult with an empty question", 400, AGENT, C, {"teamId": "t-9", "question": ""}),
    case(K, "consult by another agent", 404, OTHER_AGENT, C, {"teamId": "t-9", "question": "Dose?"}),
    case(K, "consult by a patient", 403, PATIENT, C, {"teamId": "t-9", "question": "Dose?"}),
    case(K, "reply without a signature", 401, ANON, R, REPLY),
    case(K, "reply with a bearer token", 401, AGENT, R, REPLY),
    case(K, "reply signed with an unknown token", 401, ANON, R, REPLY, headers=hmac_of(REPLY)),
    case(K, "reply that is not JSON", 400, ANON, R, "text=hello"),
    case(K, "reply for an unknown team", 400, ANON, R + "?teamId=a/b", REPLY),
    # Record hygiene
    case(K, "merge of a patient into themselves", 400, AGENT, M, {"from": "p-1"}),
    case(K, "merge of an unknown record", 422, AGENT, M, {"from": "prov-0000"}),
    case(K, "merge without from", 400, AGENT, M, {}),
    case(K, "merge by an administrator", 403, ADMIN, M, {"from": "prov-0000"}),
    case(
        K,
        "merge into an unknown patient",
        404,
        AGENT,
        "POST /api/patients/p-404/merge",
        {"from": "prov-0000"},
    ),
    case(K, "access log ending before it starts", 400, ADMIN, LOG.replace("2026-02-01", "2025-02-01")),
    case(K, "access log with a forged token", 400, ADMIN, LOG + "&continuationToken=eyJ2IjoxfQ"),
    case(K, "access log of a naive instant", 400, ADMIN, LOG.replace("T00:00:00Z", "T00:00:00")),
    case(K, "access log for an agent", 403, AGENT, LOG),
    # The unified patient view
    case(K, "summary of a malformed patient id", 400, AGENT, "GET /api/patients/p%201/summary"),
    case(K, "summary of another patient", 404, PATIENT, "GET /api/patients/p-2/summary"),
    case(K, "summary of an unknown patient", 404, AGENT, "GET /api/patients/p-404/summary"),
    case(K, "summary for an administrator", 403, ADMIN, "GET /api/patients/p-1/summary"),
    case(K, "my summary for an agent", 403, AGENT, "GET /api/me/summary"),
    case(K, "my summary without a sign-in", 401, ANON, "GET /api/me/summary"),
]
