"""Schemathesis over the whole API, in the suite: every operation of `GET /api/openapi.json` is
called through the dev host's ASGI app on a populated embedded service (tests/api/world.py) with
a token its route allows, and every answer is checked against the document.

Per operation, three sources of requests:

* **world**: one request written here that must succeed (a waiting conversation to accept, a
  free slot to book ...): it proves the operation's success answer matches the document;
* **positive**: requests schemathesis generates from the document, with a token drawn from the
  route's roles and, for path parameters, now a random id and now a real one (so generated
  bodies reach real records, not only 404s);
* **negative**: requests schemathesis generates to break the document (wrong types, missing
  fields, values outside patterns and ranges): each must be refused with a 4xx.

Checks on every answer: no 5xx, a documented status, the documented media type, the documented
headers (required ones present, values matching), the body matching its schema; and here:
`ETag`/`Location`/`Retry-After`/... only where documented, and every date or date-time in a
body declared with its format. Negative requests must be refused (`negative_data_rejection`,
412 and 413 counting as refusals). Left out: `positive_data_acceptance` (the document cannot
say everything the edge refuses with a 400: a real time zone, a valid phone number, a range
whose end follows its start) and the stateful phase (the world's requests cover the flows).

Deterministic: hypothesis is derandomized (a fixed seed per test), the service runs on a fixed
clock, and the order of requests is fixed. The figures are printed (`-s` shows them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.auth.webhook_auth import sign_webhook
from tests.api.conformance import body_schema, response_spec, undeclared_dates, undeclared_headers
from tests.api.followup_requests import issue_14_requests
from tests.api.world import TEAMS_TOKEN, TOKENS, UNLINKED_PATIENT, WEBHOOK_SECRET, SeededApp, World

POSITIVE_EXAMPLES = 25
NEGATIVE_EXAMPLES = 10
POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]
CONFIG = {
    "checks": {
        # 412 (If-Match) and 413 (size) refuse a request as surely as a 400.
        "negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "404", "409", "412", "413", "415", "422", "429"]
        }
    }
}


def world_requests(world: World) -> dict[str, list[tuple[str | None, dict[str, Any]]]]:
    """Per operation, requests that must succeed: (role, case arguments)."""
    c, a, slots = world.conversations, world.appointments, world.free_slots
    provider = {
        "name": "Dr. Maria Lopez",
        "specialty": "family-medicine",
        "timeZone": "Europe/Madrid",
        "slotMinutes": 30,
        "weeklyHours": {"mon": [["09:00", "13:00"]], "wed": [["14:00", "18:00"]]},
    }
    return {
        "POST /api/appointments": [
            (
                "Patient",
                {
                    "body": {"providerId": "dr-nowak", "start": slots[0], "reason": "Check-up"},
                    "headers": {"Idempotency-Key": "world-book-1"},
                },
            )
        ],
        "GET /api/appointments": [("Agent", {"query": {"patientId": "p-demo-1"}})],
        "GET /api/appointments/{appointmentId}": [
            ("Patient", {"path_parameters": {"appointmentId": a["read"]}})
        ],
        "POST /api/appointments/{appointmentId}/reschedule": [
            ("Patient", {"path_parameters": {"appointmentId": a["reschedule"]}, "body": {"start": slots[1]}})
        ],
        "POST /api/appointments/{appointmentId}/cancel": [
            ("Patient", {"path_parameters": {"appointmentId": a["cancel"]}})
        ],
        "POST /api/appointments/{appointmentId}/status": [
            ("Agent", {"path_parameters": {"appointmentId": a["status"]}, "body": {"status": "fulfilled"}})
        ],
        "GET /api/me/appointments": [("Patient", {})],
        "PUT /api/agents/me/presence": [("Agent", {"body": {"status": "available"}})],
        "GET /api/agents/me/presence": [("Agent", {})],
        "GET /api/agents/me/conversations": [("Agent", {})],
        "GET /api/conversations/{conversationId}": [
            ("Supervisor", {"path_parameters": {"conversationId": c["waiting"]}})
        ],
        "POST /api/conversations/{conversationId}/accept": [
            ("Agent", {"path_parameters": {"conversationId": c["accept"]}})
        ],
        "POST /api/conversations/{conversationId}/decline": [
            ("Agent", {"path_parameters": {"conversationId": c["decline"]}})
        ],
        "POST /api/conversations/{conversationId}/messages": [
            ("Agent", {"path_parameters": {"conversationId": c["message"]}, "body": {"text": "I am here."}}),
            (
                "Supervisor",
                {
                    "path_parameters": {"conversationId": c["waiting"]},
                    "body": {"text": "Check the allergy list", "visibility": "internal", "id": "note-1"},
                },
            ),
        ],
        "GET /api/conversations/{conversationId}/messages": [
            ("Supervisor", {"path_parameters": {"conversationId": c["waiting"]}, "query": {"maxItems": 1}}),
        ],
        "GET /api/me/conversations": [("Patient", {}), ("Patient", {"query": {"maxItems": 1}})],
        "GET /api/me/conversations/{conversationId}": [
            ("Patient", {"path_parameters": {"conversationId": c["waiting"]}})
        ],
        "GET /api/me/conversations/{conversationId}/messages": [
            ("Patient", {"path_parameters": {"conversationId": c["waiting"]}, "query": {"after": 0}})
        ],
        "GET /api/me/conversations/{conversationId}/negotiate": [
            ("Patient", {"path_parameters": {"conversationId": c["waiting"]}})
        ],
        "GET /api/agents/me/negotiate": [("Agent", {})],
        "GET /api/supervisor/negotiate": [("Supervisor", {})],
        "POST /api/me/conversations/{conversationId}/messages": [
            (
                "Patient",
                {"path_parameters": {"conversationId": c["waiting"]}, "body": {"text": "Still there?"}},
            )
        ],
        "POST /api/bot/conversations/{botConversationId}/messages": [
            (
                "Bot.Escalate",
                {
                    "path_parameters": {"botConversationId": "world-waiting"},
                    "body": {"text": "It hurts more now", "id": "world-bot-1"},
                },
            )
        ],
        "POST /api/bot/conversations/{botConversationId}/end": [
            ("Bot.Escalate", {"path_parameters": {"botConversationId": "world-end"}})
        ],
        "POST /api/conversations/{conversationId}/transfer": [
            (
                "Supervisor",
                {"path_parameters": {"conversationId": c["transfer"]}, "body": {"queueId": "general"}},
            )
        ],
        "POST /api/conversations/{conversationId}/close": [
            (
                "Agent",
                {"path_parameters": {"conversationId": c["close"]}, "body": {"disposition": "resolved"}},
            )
        ],
        "GET /api/conversations/{conversationId}/transcript": [
            ("Supervisor", {"path_parameters": {"conversationId": c["archived"]}}),
            ("Agent", {"path_parameters": {"conversationId": c["archived"]}}),
        ],
        "POST /api/conversations/{conversationId}/abandon": [
            ("Patient", {"path_parameters": {"conversationId": c["abandon"]}})
        ],
        "GET /api/supervisor/conversations": [
            ("Supervisor", {}),
            ("Supervisor", {"query": {"status": "waiting"}}),
        ],
        "POST /api/supervisor/conversations/{conversationId}/assign": [
            (
                "Supervisor",
                {"path_parameters": {"conversationId": c["assign"]}, "body": {"agentId": "demo-agent-3"}},
            )
        ],
        "POST /api/supervisor/conversations/{conversationId}/close": [
            (
                "Supervisor",
                {"path_parameters": {"conversationId": c["force-close"]}, "body": {"reason": "Duplicate"}},
            )
        ],
        "POST /api/escalations": [
            ("Bot.Escalate", {"body": _escalation("world-new-bearer")}),
            ("signed", {"body": _escalation("world-new-signed")}),
        ],
        "GET /api/fhir/Appointment/{appointmentId}": [
            ("Patient", {"path_parameters": {"appointmentId": a["read"]}})
        ],
        "GET /api/fhir/Slot": [
            ("Patient", {"query": {"schedule": "Schedule/dr-nowak", "start": "2026-01-06"}})
        ],
        "GET /api/agents/me": [("Agent", {})],
        "POST /api/patients/{patientId}/link-codes": [
            ("Agent", {"path_parameters": {"patientId": "p-demo-1"}})
        ],
        "POST /api/me/link": [("unlinked", {"body": {"code": world.link_code}})],
        "GET /api/me/profile": [("Patient", {})],
        "PUT /api/me/profile": [
            ("Patient", {"body": {"name": "Anna Demo", "language": "pl", "timeZone": "Europe/Warsaw"}})
        ],
        "GET /api/patients/{patientId}": [("ClinicalUser", {"path_parameters": {"patientId": "p-demo-1"}})],
        "PUT /api/patients/{patientId}": [
            (
                "ClinicalUser",
                {
                    "path_parameters": {"patientId": "p-demo-2"},
                    "body": {"name": "Ben Demo", "dateOfBirth": "1972-11-30"},
                },
            )
        ],
        "GET /api/health": [(None, {})],
        "GET /api/dashboard": [(None, {})],
        "GET /api/dashboard/assets/{asset}": [(None, {"path_parameters": {"asset": "dashboard.js"}})],
        "GET /api/dashboard/config.json": [(None, {})],
        "GET /api/supervisor/kpis": [
            (
                "Supervisor",
                {"query": {"from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z", "interval": "1h"}},
            ),
            (
                "Supervisor",
                {
                    "query": {
                        "from": "2026-01-05T08:00:00+01:00",
                        "to": "2026-01-05T10:00:00Z",
                        "interval": "15m",
                        "queueId": "general",
                    }
                },
            ),
        ],
        "GET /api/supervisor/kpis/live": [("Supervisor", {})],
        "PUT /api/manage/providers/{providerId}": [
            ("Administrator", {"path_parameters": {"providerId": "dr-lopez"}, "body": provider})
        ],
        "GET /api/providers/{providerId}": [("Patient", {"path_parameters": {"providerId": "dr-nowak"}})],
        "GET /api/providers": [("Patient", {}), ("Patient", {"query": {"specialty": "family-medicine"}})],
        "GET /api/providers/{providerId}/slots": [
            (
                "Patient",
                {
                    "path_parameters": {"providerId": "dr-nowak"},
                    "query": {"from": "2026-01-06", "to": "2026-01-09"},
                },
            )
        ],
        "PUT /api/manage/queues/{queueId}": [
            ("Administrator", {"path_parameters": {"queueId": "callbacks"}, "body": {"name": "Callbacks"}})
        ],
        "GET /api/manage/queues/{queueId}": [("Supervisor", {"path_parameters": {"queueId": "general"}})],
        "GET /api/manage/queues": [("Supervisor", {})],
        "PUT /api/manage/routing-rules": [
            (
                "Administrator",
                {
                    "body": {
                        "rules": [{"when": {"urgency": ["urgent"]}, "queueId": "urgent-care"}],
                        "fallbackQueueId": "general",
                    }
                },
            )
        ],
        "GET /api/manage/routing-rules": [("Administrator", {})],
        "PUT /api/manage/agents/{agentId}": [
            (
                "Administrator",
                {
                    "path_parameters": {"agentId": "demo-agent-4"},
                    "body": {"name": "Fourth Agent", "queues": ["general"]},
                },
            )
        ],
        "GET /api/manage/agents/{agentId}": [
            ("Supervisor", {"path_parameters": {"agentId": "demo-agent-1"}})
        ],
        "GET /api/manage/agents": [("Administrator", {}), ("Administrator", {"query": {"maxItems": 2}})],
        **issue_16_requests(world),
        **issue_14_requests(world),
    }


def issue_16_requests(world: World) -> dict[str, list[tuple[str | None, dict[str, Any]]]]:
    """Knowledge, scripts, Teams consults and record hygiene (in order: writes before reads)."""
    held = world.conversations["message"]  # active, held by demo-agent-1 (the Agent token)
    article = {
        "title": "Resetting your portal password",
        "body": "Forgot the password? Use the reset link on the sign-in page.",
        "language": "en",
        "status": "published",
        "tags": ["portal"],
    }
    script = {
        "name": "Welcome",
        "language": "en",
        "steps": [
            {"type": "text", "text": "Hello {patient.firstName}, this is {agent.name} from {queue.name}."},
            {"type": "action", "action": "send-article", "articleId": "world-article"},
        ],
        "appliesTo": {"languages": ["en"]},
    }
    reply = {
        "type": "message",
        "id": "world-reply-1",
        "text": f"<at>PSC</at> {world.consult} Yes, that is fine.",
    }
    return {
        "PUT /api/knowledge/articles/{articleId}": [
            ("KnowledgeManager", {"path_parameters": {"articleId": "world-article"}, "body": article})
        ],
        "GET /api/knowledge/articles/{articleId}": [
            ("Agent", {"path_parameters": {"articleId": "world-article"}})
        ],
        "GET /api/knowledge/search": [("Agent", {"query": {"q": "I forgot my password", "language": "en"}})],
        "GET /api/conversations/{conversationId}/suggestions": [
            ("Agent", {"path_parameters": {"conversationId": held}})
        ],
        "POST /api/conversations/{conversationId}/articles": [
            ("Agent", {"path_parameters": {"conversationId": held}, "body": {"articleId": "world-article"}})
        ],
        "PUT /api/manage/scripts/{scriptId}": [
            ("Administrator", {"path_parameters": {"scriptId": "world-script"}, "body": script})
        ],
        "GET /api/manage/scripts/{scriptId}": [
            ("Supervisor", {"path_parameters": {"scriptId": "world-script"}})
        ],
        "GET /api/conversations/{conversationId}/script": [
            ("Agent", {"path_parameters": {"conversationId": held}})
        ],
        "PUT /api/manage/teams/{teamId}": [
            (
                "IntegrationAdmin",
                {
                    "path_parameters": {"teamId": "world-team"},
                    "body": {"name": "Renamed team", "providerIds": ["dr-nowak"]},
                },
            )
        ],
        "GET /api/manage/teams/{teamId}": [
            ("IntegrationAdmin", {"path_parameters": {"teamId": "world-team"}})
        ],
        "POST /api/conversations/{conversationId}/consults": [
            (
                "Agent",
                {
                    "path_parameters": {"conversationId": held},
                    "body": {"providerId": "dr-nowak", "question": "Dose?"},
                },
            )
        ],
        "GET /api/conversations/{conversationId}/consults/{consultId}": [
            ("Supervisor", {"path_parameters": {"conversationId": held, "consultId": world.consult}})
        ],
        "POST /api/teams/consult-replies": [("teams", {"body": reply})],
        "POST /api/patients/{patientId}/merge": [
            ("Agent", {"path_parameters": {"patientId": "p-demo-1"}, "body": {"from": world.provisional}})
        ],
        "GET /api/patients/{patientId}/summary": [
            ("Agent", {"path_parameters": {"patientId": "p-demo-1"}}),
            ("Patient", {"path_parameters": {"patientId": "p-demo-1"}}),
        ],
        "GET /api/me/summary": [("Patient", {})],
        "GET /api/patients/{patientId}/access-log": [
            (
                "Administrator",
                {
                    "path_parameters": {"patientId": "p-demo-1"},
                    "query": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z", "maxItems": 5},
                },
            )
        ],
    }


def _escalation(bot_conversation_id: str) -> dict[str, Any]:
    return {
        "botConversationId": bot_conversation_id,
        "patient": {"email": "anna.demo@example.org"},
        "reason": "Needs a nurse",
        "triage": {"urgency": "urgent"},
        "transcript": [{"from": "patient", "text": "Hi", "timestamp": "2026-01-05T08:58:00Z"}],
    }


@dataclass
class Figures:
    statuses: dict[str, Counter[tuple[str, int]]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[str] = field(default_factory=list)
    unbreakable: list[str] = field(default_factory=list)

    def cases(self, source: str | None = None) -> int:
        return sum(n for c in self.statuses.values() for (s, _), n in c.items() if source in (None, s))

    def successes(self, label: str, source: str | None = None) -> int:
        return sum(
            n for (s, code), n in self.statuses[label].items() if 200 <= code < 300 and source in (None, s)
        )


class Runner:
    def __init__(self, schema: Any, app: SeededApp, document: dict[str, Any]) -> None:
        self.schema = schema
        self.app = app
        self.document = document
        self.figures = Figures()
        self.deliveries = 0

    def authenticate(self, case: Any, role: str | None) -> None:
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            case.headers.pop(name, None)
        case.headers.pop("Authorization", None)
        if role == "signed":
            # A Standard Webhooks delivery: sign the exact bytes sent, at the service's clock.
            # (No body, as `…/end` takes none: the signature covers the empty body.)
            raw = b"" if isinstance(case.body, NotSet) else json.dumps(case.body).encode()
            if raw:
                case.body = raw
            self.deliveries += 1
            case.headers.update(
                sign_webhook(WEBHOOK_SECRET, f"msg_schemathesis_{self.deliveries}", self.app.clock.now(), raw)
            )
        elif role == "unlinked":
            case.headers["Authorization"] = f"Bearer {UNLINKED_PATIENT}"
        elif role == "teams":
            # A Teams outgoing webhook's delivery: HMAC over the exact bytes sent.
            raw = json.dumps(case.body).encode()
            case.body = raw
            digest = hmac.new(base64.b64decode(TEAMS_TOKEN), raw, hashlib.sha256).digest()
            case.headers["Authorization"] = "HMAC " + base64.b64encode(digest).decode()
        elif role is not None:
            case.headers["Authorization"] = f"Bearer {TOKENS[role]}"

    def send(self, case: Any, source: str, checks: list[Any]) -> int:
        response = case.call()
        label = case.operation.label
        self.figures.statuses[label][(source, response.status_code)] += 1
        problems: list[str] = []
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as group:
            problems += [f"{type(f).__name__}: {f.title}: {f.message}" for f in group.exceptions]
        path, method = case.operation.path, case.method
        problems += [
            f"undeclared response header {h}"
            for h in undeclared_headers(
                self.document, path, method, response.status_code, dict(response.headers)
            )
        ]
        spec = response_spec(self.document, path, method, response.status_code)
        content_type = response.headers.get("content-type", [""])[0]
        # Problems echo the caller's correlation id, which may look like anything.
        if (
            spec is not None
            and response.content
            and "json" in content_type
            and "problem+json" not in content_type
        ):
            schema = body_schema(spec, content_type)
            problems += [
                f"date or date-time without a format at {where}"
                for where in undeclared_dates(self.document, schema, response.json())
            ]
        if problems:
            curl = case.as_curl_command()
            self.figures.failures += [
                f"{label} [{source}] {response.status_code}: {p}\n  {curl}" for p in problems
            ]
        return response.status_code

    def roles(self, operation: Any) -> list[str | None]:
        definition = operation.definition.raw
        if not definition.get("security"):
            return [None]
        roles: list[str | None] = [r if r in TOKENS else None for r in definition.get("x-roles", [])]
        if any(s.get("webhookSignature") is not None for s in definition["security"]):
            roles.append("signed")
        if operation.label == "POST /api/me/link":
            roles.append("unlinked")
        return [r for r in roles if r is not None] or [None]

    def world(self, requests: dict[str, list[tuple[str | None, dict[str, Any]]]]) -> None:
        operations = {op.label: op for op in self.operations()}
        for label, cases in requests.items():
            for role, arguments in cases:
                case = operations[label].Case(**arguments)
                self.authenticate(case, role)
                status = self.send(case, "world", POSITIVE_CHECKS)
                assert 200 <= status < 300, f"{label} as {role}: {status}"

    def operations(self) -> list[Any]:
        return [result.ok() for result in self.schema.get_all_operations()]

    def generated(self, operation: Any, mode: GenerationMode, examples: int) -> None:
        roles = self.roles(operation)
        names = [p.name for p in operation.path_parameters]
        source = "positive" if mode == GenerationMode.POSITIVE else "negative"
        checks = POSITIVE_CHECKS if source == "positive" else NEGATIVE_CHECKS

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            case = data.draw(operation.as_strategy(generation_mode=mode))
            role = data.draw(st.sampled_from(roles))
            if source == "positive":
                for name in names:
                    real = data.draw(st.sampled_from([None, *self.app.world.ids(name)]))
                    if real is not None:
                        case.path_parameters[name] = real
            elif role == "signed":
                role = "Bot.Escalate"  # a signature over a broken body would only prove the signing
            self.authenticate(case, role)
            self.send(case, source, checks)

        try:
            run()
        except Unsatisfiable:
            # Nothing in the operation's document can be broken (no body, no constrained
            # parameter): there is no negative request to make.
            assert source == "negative", operation.label
            self.figures.unbreakable.append(operation.label)


@pytest.mark.timeout(300)
def test_every_operation_answers_as_documented_under_generated_requests(tmp_path: Path) -> None:
    from schemathesis.python import asgi

    started = time.monotonic()
    app = SeededApp(tmp_path / "data")
    schema = schemathesis.openapi.from_asgi(
        "/api/openapi.json", app, config=SchemathesisConfig.from_dict(CONFIG)
    )
    try:
        document = schema.raw_schema
        runner = Runner(schema, app, document)
        operations = runner.operations()
        runner.world(world_requests(app.world))
        for operation in operations:
            runner.generated(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
            runner.generated(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
    finally:
        asgi.shutdown_lifespans()
    figures = runner.figures
    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis: {len(operations)} operations, {figures.cases()} cases "
        f"({figures.cases('world')} world, {figures.cases('positive')} positive, "
        f"{figures.cases('negative')} negative) in {elapsed:.1f} s, {len(figures.failures)} failures; "
        f"nothing to break in {len(figures.unbreakable)}: {', '.join(figures.unbreakable)}"
    )
    for label in sorted(figures.statuses):
        counts = figures.statuses[label]
        by_status = Counter[int]()
        for (_, code), n in counts.items():
            by_status[code] += n
        generated = figures.successes(label, "positive") + figures.successes(label, "negative")
        print(
            f"  {label}: 2xx {figures.successes(label)} (generated {generated}); "
            + ", ".join(f"{code} x{n}" for code, n in sorted(by_status.items()))
        )
    assert not figures.failures, "\n".join(figures.failures[:30])
    never = [op.label for op in operations if figures.successes(op.label) == 0]
    assert not never, f"operations never answered 2xx: {never}"
    assert {op.label for op in operations} == set(world_requests(app.world)), (
        "every operation has a world request"
    )
