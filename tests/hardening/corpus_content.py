"""The bad-input corpus of issue 11, part two: text, types, references and bodies where none is
expected (the helpers and part one are in corpus.py)."""

from __future__ import annotations

import json

from tests.hardening.corpus import (
    AGENT_BODY,
    BOOK,
    BOOKING,
    CLINICAL,
    ESCALATE,
    MESSAGES,
    NATIVE,
    NEW_AGENT,
    NEW_QUEUE,
    NO_RECORD,
    PROVIDER,
    SLOTS,
    STAFF_BOOKING,
    case,
    said,
    tags,
)
from tests.hardening.world import ADMIN, AGENT, BOT, PATIENT, SUPERVISOR, WARSAW

X = "text"
TEXT = [
    case(X, "NUL in my name", 400, PATIENT, "PUT /api/me/profile", {"name": "Anna\0"}),
    case(
        X,
        "right-to-left override in my name",
        400,
        PATIENT,
        "PUT /api/me/profile",
        {"name": "Anna\u202egnp.exe"},
    ),
    case(X, "newline in a patient name", 400, ADMIN, "PUT /api/patients/p-1", {"name": "Anna\nTest"}),
    case(
        X,
        "bell in clinical notes",
        400,
        CLINICAL,
        "PUT /api/patients/p-1",
        {"name": "A", "clinicalNotes": "ok\a"},
    ),
    case(X, "NUL in a message", 400, AGENT, MESSAGES, {"text": "hello\0"}),
    case(X, "isolate in a message", 400, AGENT, MESSAGES, {"text": "hello \u2066world\u2069"}),
    case(
        X, "C1 control in a queue name", 400, ADMIN, "PUT /api/manage/queues/general", {"name": "General\x85"}
    ),
    case(
        X,
        "embedding in an overflow message",
        400,
        ADMIN,
        NEW_QUEUE,
        {"name": "Q", "overflow": {"message": "\u202b"}},
    ),
    case(X, "DEL in an agent name", 400, ADMIN, NEW_AGENT, {**AGENT_BODY, "name": "Agent\x7f"}),
    case(X, "tab in a provider name", 400, ADMIN, PROVIDER, {**WARSAW, "name": "Dr.\tTest"}),
    case(X, "line separator in a provider name", 400, ADMIN, PROVIDER, {**WARSAW, "name": "Dr.\u2028Test"}),
    case(X, "escape in a booking reason", 400, PATIENT, BOOK, {**BOOKING, "reason": "\x1b[31mred"}),
    case(X, "NUL in an escalation reason", 400, BOT, ESCALATE, {**NATIVE, "reason": "pain\0"}),
    case(X, "override in a transcript line", 400, BOT, ESCALATE, said("\u202ex")),
    case(X, "control in a context key", 400, BOT, ESCALATE, {**NATIVE, "context": {"ward\x01": "7"}}),
    case(
        X,
        "NUL inside channelData.tags",
        400,
        BOT,
        ESCALATE,
        tags('{"type":"Escalate","context":{"a":"b\\u0000"}}'),
    ),
    case(
        X,
        "lone surrogate in a reason",
        400,
        BOT,
        ESCALATE,
        json.dumps(NATIVE).replace("Chest pain", "\\ud800"),
    ),
    case(
        X,
        "lone surrogate inside channelData.tags",
        400,
        BOT,
        ESCALATE,
        tags('{"type":"Escalate","context":{"a":"\\ud800"}}'),
    ),
    case(
        X,
        "control in a disposition",
        400,
        AGENT,
        "POST /api/conversations/c-1/close",
        {"disposition": "done\x03"},
    ),
    case(
        X,
        "control in a force-close reason",
        400,
        SUPERVISOR,
        "POST /api/supervisor/conversations/c-1/close",
        {"reason": "x\x04"},
    ),
    case(X, "control in a skill name", 400, ADMIN, NEW_AGENT, {**AGENT_BODY, "skills": {"bil\0ling": 3}}),
    case(X, "control in a query value", 400, PATIENT, "GET /api/providers?specialty=card%00io"),
    case(X, "body that is not UTF-8", 400, PATIENT, "PUT /api/me/profile", b'{"name": "\xff\xfe"}'),
]

Y = "types"
TYPES = [
    case(Y, "capacity true", 400, ADMIN, NEW_AGENT, {**AGENT_BODY, "capacity": True}),
    case(Y, "capacity as a string", 400, ADMIN, NEW_AGENT, {**AGENT_BODY, "capacity": "3"}),
    case(Y, "capacity 2.5", 400, ADMIN, NEW_AGENT, {**AGENT_BODY, "capacity": 2.5}),
    case(Y, "priority as a string", 400, ADMIN, NEW_QUEUE, {"name": "Q", "priority": "5"}),
    case(Y, "slotMinutes true", 400, ADMIN, PROVIDER, {**WARSAW, "slotMinutes": True}),
    case(
        Y,
        "consent sms as a string",
        400,
        PATIENT,
        "PUT /api/me/profile",
        {"name": "A", "consent": {"sms": "true"}},
    ),
    case(
        Y, "consent email as 1", 400, PATIENT, "PUT /api/me/profile", {"name": "A", "consent": {"email": 1}}
    ),
    case(Y, "providerId as a number", 400, PATIENT, BOOK, {**BOOKING, "providerId": 12}),
    case(Y, "skill level as a string", 400, ADMIN, NEW_AGENT, {**AGENT_BODY, "skills": {"billing": "3"}}),
    case(Y, "context value true", 400, BOT, ESCALATE, {**NATIVE, "context": {"vip": True}}),
    case(Y, "NaN for a number", 400, ADMIN, NEW_AGENT, '{"name": "A", "capacity": NaN}'),
    case(Y, "duplicate key capacity", 400, ADMIN, NEW_AGENT, '{"name":"A","capacity":1,"capacity":100}'),
    case(
        Y,
        "duplicate key patientId",
        400,
        PATIENT,
        BOOK,
        json.dumps(BOOKING)[:-1] + ',"patientId":"p-1","patientId":"p-2"}',
    ),
    case(
        Y,
        "duplicate key in triage",
        400,
        BOT,
        ESCALATE,
        json.dumps(NATIVE).replace('"urgent"', '"routine","urgency":"emergency"'),
    ),
    case(
        Y,
        "duplicate key inside channelData.tags",
        400,
        BOT,
        ESCALATE,
        tags('{"type":"Escalate","type":"Other"}'),
    ),
    case(Y, "from given twice", 400, PATIENT, SLOTS + "?from=2026-01-06&from=2026-01-07&to=2026-01-08"),
    case(
        Y,
        "maxItems given twice",
        400,
        SUPERVISOR,
        "GET /api/supervisor/conversations?maxItems=1&maxItems=1000",
    ),
    case(Y, "limit given twice", 400, PATIENT, "GET /api/providers?limit=1&limit=2"),
    case(Y, "maxItems not a number", 400, SUPERVISOR, "GET /api/supervisor/conversations?maxItems=lots"),
    case(Y, "slot page of 1,001", 400, PATIENT, SLOTS + "?from=2026-01-06&to=2026-01-07&maxItems=1001"),
    case(Y, "limit of zero", 400, PATIENT, "GET /api/me/appointments?limit=0"),
    case(Y, "my conversations, maxItems of zero", 400, PATIENT, "GET /api/me/conversations?maxItems=0"),
    case(
        Y,
        "my conversations, maxItems given twice",
        400,
        PATIENT,
        "GET /api/me/conversations?maxItems=1&maxItems=2",
    ),
    case(Y, "my conversations as an agent", 403, AGENT, "GET /api/me/conversations"),
    case(Y, "body that is an array", 400, ADMIN, NEW_QUEUE, [{"name": "Q"}]),
    case(Y, "body that is a string", 400, AGENT, MESSAGES, '"hello"'),
]

R = "reference"
REFERENCES = [
    case(
        R,
        "booking for a patient that does not exist",
        422,
        AGENT,
        BOOK,
        {**STAFF_BOOKING, "patientId": "p-nobody"},
    ),
    case(
        R,
        "booking in a conversation that does not exist",
        422,
        AGENT,
        BOOK,
        {**STAFF_BOOKING, "conversationId": "c-0"},
    ),
    case(
        R,
        "booking in another patient's conversation",
        422,
        AGENT,
        BOOK,
        {**STAFF_BOOKING, "patientId": "p-2", "conversationId": "c-1"},
    ),
    case(
        R,
        "booking with a provider that does not exist",
        422,
        PATIENT,
        BOOK,
        {**BOOKING, "providerId": "dr-nobody"},
    ),
    case(R, "a patient without a record books", 404, NO_RECORD, BOOK, BOOKING),
    case(
        R,
        "transfer to a queue that does not exist",
        422,
        AGENT,
        "POST /api/conversations/c-1/transfer",
        {"queueId": "nowhere"},
    ),
    case(
        R,
        "transfer to an agent that does not exist",
        422,
        SUPERVISOR,
        "POST /api/conversations/c-1/transfer",
        {"agentId": "nobody"},
    ),
    case(
        R,
        "assign to an agent that does not exist",
        422,
        SUPERVISOR,
        "POST /api/supervisor/conversations/c-1/assign",
        {"agentId": "x"},
    ),
    case(
        R,
        "agent in a queue that does not exist",
        422,
        ADMIN,
        NEW_AGENT,
        {**AGENT_BODY, "queues": ["nowhere"]},
    ),
    case(
        R,
        "rule to a queue that does not exist",
        422,
        ADMIN,
        "PUT /api/manage/routing-rules",
        {"rules": [], "fallbackQueueId": "no"},
    ),
    case(
        R,
        "overflow to a queue that does not exist",
        422,
        ADMIN,
        NEW_QUEUE,
        {"name": "Q", "overflow": {"action": "transfer", "targetQueueId": "no"}},
    ),
    case(
        R, "link code for a patient that does not exist", 404, ADMIN, "POST /api/patients/p-nobody/link-codes"
    ),
    case(R, "cancel an appointment that does not exist", 404, AGENT, "POST /api/appointments/nothing/cancel"),
    case(
        R, "accept a conversation that does not exist", 404, AGENT, "POST /api/conversations/c-nobody/accept"
    ),
    case(
        R,
        "slots of a provider that does not exist",
        404,
        PATIENT,
        "GET /api/providers/dr-nobody/slots?from=2026-01-06&to=2026-01-07",
    ),
]

B = "body"
CANCEL = "POST /api/appointments/{appt}/cancel"
BODIES = [
    case(B, "cancel with an object", 400, PATIENT, CANCEL, {"reason": "changed my mind"}),
    case(B, "cancel with an array", 400, PATIENT, CANCEL, []),
    case(B, "cancel with null", 400, PATIENT, CANCEL, "null"),
    case(B, "cancel with text", 400, PATIENT, CANCEL, "please cancel"),
    case(B, "cancel with {} twice over", 400, PATIENT, CANCEL, "{}{}"),
    case(B, "accept with an object", 400, AGENT, "POST /api/conversations/c-1/accept", {"force": True}),
    case(B, "decline with a number", 400, AGENT, "POST /api/conversations/c-1/decline", "1"),
    case(B, "abandon with an object", 400, SUPERVISOR, "POST /api/conversations/c-1/abandon", {"why": "x"}),
    case(B, "link code with an object", 400, ADMIN, "POST /api/patients/p-1/link-codes", {"ttl": 99999}),
    case(B, "read with a body", 400, ADMIN, "GET /api/patients/p-1", {"name": "x"}),
]
