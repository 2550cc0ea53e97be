"""The bad-input corpus of issue 11, part one (time, depth and size, identifiers; part two is in
corpus_content.py): requests from outside that must get a 4xx problem and change nothing.

`case(kind, name, status, caller, "METHOD /path", body)`: a body is an object (sent as JSON), a
str or bytes (sent as is); `{appt}` in a path is the world's booked appointment."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import token
from tests.hardening.world import ADMIN, AGENT, BOT, PATIENT, SUPERVISOR, WARSAW

CLINICAL = token("Agent", "ClinicalUser", sub="agent-1")
NO_RECORD = token("Patient", sub="ghost", patient_id="p-ghost")
ANON = None


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    status: int
    bearer: str | None
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


def case(
    kind: str, name: str, status: int, bearer: str | None, request: str, body: Any = None, **kw: Any
) -> Case:
    method, path = request.split(" ", 1)
    return Case(kind, name, status, bearer, method, path, body, **kw)


def nested(depth: int, leaf: Any = 1) -> str:
    return "[" * depth + json.dumps(leaf) + "]" * depth


def token_of(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def tags(text: str, conversation_id: str = "bf-conv-9") -> dict[str, Any]:
    """A Bot Framework escalation activity whose channelData.tags is `text`."""
    return {"type": "message", "conversation": {"id": conversation_id}, "channelData": {"tags": text}}


def signed(stamp: str) -> dict[str, str]:
    return {"webhook-id": "msg-1", "webhook-timestamp": stamp, "webhook-signature": "v1,AAAA"}


NATIVE: dict[str, Any] = {
    "botConversationId": "bot-conv-9",
    "patient": {"name": "Jan Nowak"},
    "reason": "Chest pain",
    "triage": {"urgency": "urgent"},
    "transcript": [{"from": "patient", "text": "It hurts", "timestamp": "2026-01-05T08:59:00Z"}],
}
BOOKING = {"providerId": "dr-warsaw", "start": "2026-01-06T08:00:00Z", "reason": "Check-up"}
STAFF_BOOKING = {**BOOKING, "patientId": "p-1"}
AGENT_BODY = {"name": "Agent Two", "queues": ["general"], "capacity": 2}
NEW_AGENT = "PUT /api/manage/agents/agent-2"
NEW_QUEUE = "PUT /api/manage/queues/q2"
PROVIDER = "PUT /api/manage/providers/dr-warsaw"
BOOK = "POST /api/appointments"
ESCALATE = "POST /api/escalations"
SLOTS = "GET /api/providers/dr-warsaw/slots"
FHIR_SLOTS = "GET /api/fhir/Slot?schedule=Schedule/dr-warsaw&start="
MESSAGES = "POST /api/conversations/c-1/messages"


def said(text: str, stamp: str = "2026-01-05T08:59:00Z") -> dict[str, Any]:
    return {**NATIVE, "transcript": [{"from": "patient", "text": text, "timestamp": stamp}]}


def at(stamp: str) -> dict[str, Any]:
    return said("x", stamp)


T = "time"
TIME = [
    case(
        T,
        "webhook-timestamp of 12 digits, no credentials",
        401,
        ANON,
        ESCALATE,
        NATIVE,
        headers=signed("9" * 12),
    ),
    case(
        T,
        "webhook-timestamp of 40 digits, no credentials",
        401,
        ANON,
        ESCALATE,
        NATIVE,
        headers=signed("9" * 40),
    ),
    case(
        T,
        "webhook-timestamp of 11 digits, no credentials",
        401,
        ANON,
        ESCALATE,
        NATIVE,
        headers=signed("9" * 11),
    ),
    case(T, "slot search ending 9999-12-31", 400, PATIENT, SLOTS + "?from=9999-12-30&to=9999-12-31"),
    case(T, "slot search from 0001-01-01", 400, PATIENT, SLOTS + "?from=0001-01-01&to=0001-01-02"),
    case(
        T,
        "slot search from year 1 with +01:00",
        400,
        PATIENT,
        SLOTS + "?from=0001-01-01T00:00:00%2B01:00&to=2026-01-07",
    ),
    case(
        T,
        "slot search to 9999-12-31 with -05:00",
        400,
        PATIENT,
        SLOTS + "?from=2026-01-06&to=9999-12-31T23:59:59-05:00",
    ),
    case(
        T, "slot search from a naive instant", 400, PATIENT, SLOTS + "?from=2026-01-06T08:00:00&to=2026-01-07"
    ),
    case(T, "FHIR slot search on 9999-12-31", 400, PATIENT, FHIR_SLOTS + "9999-12-31"),
    case(T, "FHIR slot search ge 9999-12-31T23:00Z", 400, PATIENT, FHIR_SLOTS + "ge9999-12-31T23:00:00Z"),
    case(T, "FHIR slot search on 0001-01-01", 400, PATIENT, FHIR_SLOTS + "0001-01-01"),
    case(
        T,
        "booking at 9999-12-31 -05:00",
        400,
        PATIENT,
        BOOK,
        {**BOOKING, "start": "9999-12-31T23:59:59-05:00"},
    ),
    case(
        T,
        "booking at 0001-01-01 +01:00",
        400,
        PATIENT,
        BOOK,
        {**BOOKING, "start": "0001-01-01T00:00:00+01:00"},
    ),
    case(T, "booking at a naive time", 400, PATIENT, BOOK, {**BOOKING, "start": "2026-01-06T08:00:00"}),
    case(T, "booking at a unix number", 400, PATIENT, BOOK, {**BOOKING, "start": 1767686400}),
    case(T, "booking at a week date", 400, PATIENT, BOOK, {**BOOKING, "start": "2026-W02-2T08:00:00Z"}),
    case(
        T,
        "reschedule to 9999 -14:00",
        400,
        PATIENT,
        "POST /api/appointments/{appt}/reschedule",
        {"start": "9999-12-31T23:59:59-14:00"},
    ),
    case(
        T,
        "reschedule to year 1",
        400,
        PATIENT,
        "POST /api/appointments/{appt}/reschedule",
        {"start": "0001-01-01T00:00:00+14:00"},
    ),
    case(T, "transcript stamp in year 1 +01:00", 400, BOT, ESCALATE, at("0001-01-01T00:00:00+01:00")),
    case(T, "transcript stamp 9999-12-31 -05:00", 400, BOT, ESCALATE, at("9999-12-31T23:59:59-05:00")),
    case(T, "transcript stamp without an offset", 400, BOT, ESCALATE, at("2026-01-05T08:59:00")),
    case(
        T,
        "provider exception on 9999-12-31",
        400,
        ADMIN,
        PROVIDER,
        {**WARSAW, "exceptions": [{"date": "9999-12-31"}]},
    ),
    case(
        T,
        "date of birth 0001-01-01",
        400,
        CLINICAL,
        "PUT /api/patients/p-1",
        {"name": "A", "dateOfBirth": "0001-01-01"},
    ),
    case(
        T,
        "escalated date of birth 9999-12-31",
        400,
        BOT,
        ESCALATE,
        {**NATIVE, "patient": {"dateOfBirth": "9999-12-31"}},
    ),
]

D = "depth"
DEEP_TAGS = '{"type":"Escalate","context":{"x":' + nested(1000) + "}}"
PAGE_TOKEN = '{"v":1,"q":"x","k":' + nested(1000) + "}"
DEPTH_AND_SIZE = [
    case(D, "channelData.tags nested 1,000 deep", 400, BOT, ESCALATE, tags(DEEP_TAGS)),
    case(D, "channelData.tags nested 100,000 deep", 400, BOT, ESCALATE, tags(nested(100_000))),
    case(D, "channelData.tags nested 40 deep", 400, BOT, ESCALATE, tags(nested(40))),
    case(
        D,
        "channelData.tags over 64 KiB",
        400,
        BOT,
        ESCALATE,
        tags(json.dumps({"type": "Escalate", "pad": "x" * 70_000})),
    ),
    case(
        D,
        "continuationToken 1,000 deep (providers)",
        400,
        PATIENT,
        "GET /api/providers?continuationToken=" + token_of(nested(1000)),
    ),
    case(
        D,
        "continuationToken 1,000 deep (mine)",
        400,
        PATIENT,
        "GET /api/me/appointments?continuationToken=" + token_of(PAGE_TOKEN),
    ),
    case(
        D,
        "continuationToken 1,000 deep (my conversations)",
        400,
        PATIENT,
        "GET /api/me/conversations?continuationToken=" + token_of(PAGE_TOKEN),
    ),
    case(
        D,
        "continuationToken 10,000 deep (board)",
        400,
        SUPERVISOR,
        "GET /api/supervisor/conversations?continuationToken=" + token_of(nested(10_000)),
    ),
    case(
        D,
        "continuationToken 1,000 deep (slots)",
        400,
        PATIENT,
        SLOTS + "?from=2026-01-06&to=2026-01-07&continuationToken=" + token_of(nested(1000)),
    ),
    case(
        D, "continuationToken not base64 JSON", 400, PATIENT, "GET /api/providers?continuationToken=%25%25%25"
    ),
    case(
        D,
        "body nested 1,000 deep",
        400,
        ADMIN,
        "PUT /api/patients/p-1",
        '{"name":"A","consent":' + nested(1000) + "}",
    ),
    case(D, "body nested 100,000 deep", 400, PATIENT, BOOK, nested(100_000)),
    case(
        D,
        "context nested 40 deep",
        400,
        BOT,
        ESCALATE,
        '{"botConversationId":"b","context":{"a":' + nested(40) + "}}",
    ),
    case("size", "body over 256 KiB", 413, ADMIN, NEW_AGENT, {**AGENT_BODY, "name": "x" * (300 * 1024)}),
    case("size", "body over 256 KiB, no credentials", 413, ANON, ESCALATE, "x" * (257 * 1024)),
]


def deep_token(limit: int, prefix: str = "") -> str:
    """The longest token of `limit` characters or fewer whose JSON is `prefix` and then nothing but
    `[`: as deep as a token the route's length limit lets through can be (a 2,000-character token
    holds 1,500 levels)."""
    room = limit * 3 // 4 - len(prefix)
    return token_of(prefix + "[" * room)


# Every route that takes a `continuationToken`, with a caller allowed to read it and the token's
# length limit (tests/hardening/test_bad_input.py checks this names every such route).
PAGED_ROUTES: dict[str, tuple[str, str, int]] = {
    "GET providers": (PATIENT, "GET /api/providers?", 2000),
    "GET providers/{providerId}/slots": (PATIENT, SLOTS + "?from=2026-01-06&to=2026-01-07&", 200),
    "GET me/appointments": (PATIENT, "GET /api/me/appointments?", 2000),
    "GET me/conversations": (PATIENT, "GET /api/me/conversations?", 2000),
    "GET appointments": (AGENT, "GET /api/appointments?patientId=p-1&", 2000),
    "GET manage/agents": (ADMIN, "GET /api/manage/agents?", 2000),
    "GET supervisor/conversations": (SUPERVISOR, "GET /api/supervisor/conversations?", 4000),
    "GET patients/{patientId}/access-log": (
        ADMIN,
        "GET /api/patients/p-1/access-log?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&",
        2048,
    ),
}
# Within each route's length limit: bare brackets, and brackets inside an envelope shaped like ours.
DEEP_TOKENS = [
    case(
        D,
        f"continuationToken {how}, within its limit ({label})",
        400,
        bearer,
        f"{request}continuationToken={t}",
    )
    for label, (bearer, request, limit) in PAGED_ROUTES.items()
    for how, t in (
        ("all brackets", deep_token(limit)),
        ("brackets in an envelope", deep_token(limit, '{"v":1,"s":"0","at":"","c":')),
    )
]
DEPTH_AND_SIZE += [
    *DEEP_TOKENS,
    case(
        D,
        "continuationToken 1,000 brackets, 1,334 characters (providers)",
        400,
        PATIENT,
        "GET /api/providers?continuationToken=" + token_of("[" * 1000),
    ),
    case(
        D,
        "continuationToken 1,000 deep, date form (appointments)",
        400,
        AGENT,
        "GET /api/appointments?providerId=dr-warsaw&date=2026-01-06&continuationToken=" + deep_token(2000),
    ),
]

# A bad id in the path of every kind of route that takes one, and every bad id in one of them.
ID_ROUTES = {
    "patient": ("GET /api/patients/{}", None, ADMIN),
    "patient (PUT)": ("PUT /api/patients/{}", {"name": "X"}, ADMIN),
    "agent": ("PUT /api/manage/agents/{}", AGENT_BODY, ADMIN),
    "queue": ("PUT /api/manage/queues/{}", {"name": "Q"}, ADMIN),
    "provider": ("PUT /api/manage/providers/{}", WARSAW, ADMIN),
    "appointment": ("POST /api/appointments/{}/cancel", None, AGENT),
    "conversation": ("POST /api/conversations/{}/close", {}, AGENT),
    "link code": ("POST /api/patients/{}/link-codes", None, ADMIN),
}
BAD_IDS = {
    "slash": "a%2Fb",
    "backslash": "a%5Cb",
    "question mark": "a%3Fb",
    "hash": "a%23b",
    "dot-dot": "%2E%2E",
    "dot": "%2E",
    "NUL": "a%00b",
    "control": "a%01b",
    "space": "a%20b",
    "256 characters": "a" * 256,
    "101 characters": "a" * 101,
    "non-ASCII": "%C3%A9",
}
ELSEWHERE = [
    ("slash", "patient"),
    ("NUL", "patient"),
    ("dot-dot", "patient (PUT)"),
    ("101 characters", "patient"),
    ("question mark", "queue"),
    ("dot", "queue"),
    ("hash", "provider"),
    ("control", "appointment"),
    ("slash", "appointment"),
    ("space", "conversation"),
    ("256 characters", "conversation"),
    ("non-ASCII", "link code"),
]


def _in_path(label: str, route: str) -> Case:
    request, body, bearer = ID_ROUTES[route]
    return case("identifier", f"{label} in {route} path", 400, bearer, request.format(BAD_IDS[label]), body)


ID = "identifier"
IDENTIFIERS = [
    *(_in_path(label, "agent") for label in BAD_IDS),
    *(_in_path(label, route) for label, route in ELSEWHERE),
    case(ID, "patientId with a slash in a booking", 400, AGENT, BOOK, {**STAFF_BOOKING, "patientId": "a/b"}),
    case(ID, "providerId with a hash in a booking", 400, PATIENT, BOOK, {**BOOKING, "providerId": "a#b"}),
    case(
        ID, "providerId with an underscore (not FHIR)", 400, PATIENT, BOOK, {**BOOKING, "providerId": "a_b"}
    ),
    case(
        ID,
        "conversationId with NUL in a booking",
        400,
        AGENT,
        BOOK,
        {**STAFF_BOOKING, "conversationId": "c\0"},
    ),
    case(
        ID,
        "conversationId of 256 characters",
        400,
        AGENT,
        BOOK,
        {**STAFF_BOOKING, "conversationId": "c" * 256},
    ),
    case(ID, "transfer to queue ..", 400, AGENT, "POST /api/conversations/c-1/transfer", {"queueId": ".."}),
    case(
        ID,
        "assign agent a\\b",
        400,
        SUPERVISOR,
        "POST /api/supervisor/conversations/c-1/assign",
        {"agentId": "a\\b"},
    ),
    case(
        ID,
        "rule to queue a?b",
        400,
        ADMIN,
        "PUT /api/manage/routing-rules",
        {"rules": [{"queueId": "a?b"}], "fallbackQueueId": "general"},
    ),
    case(ID, "agent in queue a/b", 400, ADMIN, NEW_AGENT, {**AGENT_BODY, "queues": ["a/b"]}),
    case(
        ID,
        "overflow target of 101 characters",
        400,
        ADMIN,
        NEW_QUEUE,
        {"name": "Q", "overflow": {"action": "transfer", "targetQueueId": "q" * 101}},
    ),
    case(
        ID,
        "FHIR schedule with a slash",
        400,
        PATIENT,
        "GET /api/fhir/Slot?schedule=Schedule/a/b&start=2026-01-06",
    ),
    case(ID, "botConversationId with a bell", 400, BOT, ESCALATE, {**NATIVE, "botConversationId": "b\a"}),
    case(
        ID,
        "botConversationId of 513 characters",
        400,
        BOT,
        ESCALATE,
        {**NATIVE, "botConversationId": "b" * 513},
    ),
    case(ID, "activity conversation id with NUL", 400, BOT, ESCALATE, tags('{"type":"Escalate"}', "x\0y")),
    case(ID, "escalated patient id with a slash", 400, BOT, ESCALATE, {**NATIVE, "patient": {"id": "p/1"}}),
    case(
        ID,
        "tags patientId with a slash",
        400,
        BOT,
        ESCALATE,
        tags('{"type":"Escalate","context":{"patientId":"p/1"}}'),
    ),
    # Bot callback URLs (issue 13): refused by the policy or the model, never echoed, nothing written.
    case(
        ID,
        "callback url on an unlisted host",
        400,
        BOT,
        ESCALATE,
        {**NATIVE, "callback": {"url": "https://x.example/h"}},
    ),
    case(
        ID,
        "callback url to the metadata address",
        400,
        BOT,
        ESCALATE,
        {**NATIVE, "callback": {"url": "http://169.254.169.254/"}},
    ),
    case(
        ID,
        "callback url with a newline",
        400,
        BOT,
        ESCALATE,
        {**NATIVE, "callback": {"url": "https://a.example/\nb"}},
    ),
    case(
        ID,
        "callback url javascript:",
        400,
        BOT,
        ESCALATE,
        {**NATIVE, "callback": {"url": "javascript:alert(1)"}},
    ),
    case(
        ID,
        "callback url of 2,049 characters",
        400,
        BOT,
        ESCALATE,
        {**NATIVE, "callback": {"url": "https://a.example/" + "a" * 2031}},
    ),
    case(ID, "callback url a number", 400, BOT, ESCALATE, {**NATIVE, "callback": {"url": 42}}),
    case(ID, "callback without a url", 400, BOT, ESCALATE, {**NATIVE, "callback": {}}),
    case(ID, "callback a string", 400, BOT, ESCALATE, {**NATIVE, "callback": "https://a.example/"}),
    case(
        ID,
        "activity callback on an unlisted host",
        400,
        BOT,
        ESCALATE,
        {
            **tags('{"type":"Escalate"}'),
            "channelData": {"tags": '{"type":"Escalate"}', "callback": {"url": "https://x.example/"}},
        },
    ),
]
