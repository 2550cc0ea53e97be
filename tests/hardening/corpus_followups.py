"""The bad-input corpus for issue 14's routes (follow-ups): each a 4xx problem that changes nothing."""

from __future__ import annotations

from tests.hardening.corpus import ANON, Case, case
from tests.hardening.world import ADMIN, AGENT, PATIENT, SUPERVISOR

RP = "PUT /api/manage/reminder-policy"
SP = "PUT /api/manage/survey-policy"
POLICY = {"offsets": ["P2D", "PT2H"], "channels": ["sms", "email", "portal"]}
SURVEYS = {"afterConversation": {"enabled": True, "delay": "PT1H"}, "capDays": 30}

F = "follow-ups"
FOLLOWUPS: list[Case] = [
    case(F, "reminder offset in words", 400, ADMIN, RP, {**POLICY, "offsets": ["two days"]}),
    case(F, "reminder offset in months", 400, ADMIN, RP, {**POLICY, "offsets": ["P1M"]}),
    case(F, "negative reminder offset", 400, ADMIN, RP, {**POLICY, "offsets": ["-P1D"]}),
    case(F, "reminder offset of a year", 400, ADMIN, RP, {**POLICY, "offsets": ["P365D"]}),
    case(F, "the same offset twice", 400, ADMIN, RP, {**POLICY, "offsets": ["P1D", "PT24H"]}),
    case(F, "reminder by fax", 400, ADMIN, RP, {**POLICY, "channels": ["fax"]}),
    case(F, "reminder on no channel", 400, ADMIN, RP, {**POLICY, "channels": []}),
    case(
        F,
        "quiet hours at 24:61",
        400,
        ADMIN,
        RP,
        {**POLICY, "quietHours": {"start": "24:61", "end": "08:00"}},
    ),
    case(F, "cap per day as a string", 400, ADMIN, RP, {**POLICY, "cap": {"perDay": "1", "perWeek": 3}}),
    case(F, "cap per week below per day", 400, ADMIN, RP, {**POLICY, "cap": {"perDay": 3, "perWeek": 1}}),
    case(F, "reminder policy by a supervisor", 403, SUPERVISOR, RP, POLICY),
    case(F, "reminder policy with a malformed If-Match", 400, ADMIN, RP, POLICY, headers={"If-Match": "v1"}),
    case(
        F,
        "survey delay in words",
        400,
        ADMIN,
        SP,
        {**SURVEYS, "afterConversation": {"enabled": True, "delay": "soon"}},
    ),
    case(F, "survey cap of a negative number of days", 400, ADMIN, SP, {**SURVEYS, "capDays": -1}),
    case(F, "survey enabled as a string", 400, ADMIN, SP, {**SURVEYS, "afterVisit": {"enabled": "yes"}}),
    case(F, "survey policy by an agent", 403, AGENT, SP, SURVEYS),
    case(F, "reminder policy read by a patient", 403, PATIENT, "GET /api/manage/reminder-policy"),
    case(F, "link token with a bell", 400, ANON, "GET /api/links/a%07b"),
    case(F, "link token of 101 characters", 400, ANON, "POST /api/links/" + "t" * 101),
    case(F, "unknown link token", 404, ANON, "POST /api/links/0123456789abcdef"),
    case(F, "link used with a JSON body", 400, ANON, "POST /api/links/0123456789abcdef", {"cancel": True}),
    case(F, "link page of an unknown token", 404, ANON, "GET /api/links/0123456789abcdef"),
    case(
        F,
        "survey answer above the scale",
        400,
        ANON,
        "POST /api/surveys/0123456789abcdef",
        {"csat": 6, "nps": 1},
    ),
    case(
        F,
        "survey answer as strings",
        400,
        ANON,
        "POST /api/surveys/0123456789abcdef",
        {"csat": "5", "nps": "1"},
    ),
    case(F, "survey answer without nps", 400, ANON, "POST /api/surveys/0123456789abcdef", {"csat": 5}),
    case(
        F,
        "survey comment with a bell",
        400,
        ANON,
        "POST /api/surveys/0123456789abcdef",
        {"csat": 5, "nps": 1, "comment": "a\u0007"},
    ),
    case(F, "unknown survey", 404, ANON, "POST /api/surveys/0123456789abcdef", {"csat": 5, "nps": 1}),
    case(F, "survey token with a slash", 400, ANON, "GET /api/surveys/a%2Fb"),
    case(F, "inbox read by an agent", 403, AGENT, "GET /api/me/inbox"),
    case(F, "inbox item id with a space", 400, PATIENT, "POST /api/me/inbox/a%20b/read"),
    case(
        F,
        "inbox item marked read with a body",
        400,
        PATIENT,
        "POST /api/me/inbox/inbox:x/read",
        {"read": True},
    ),
    case(F, "unknown inbox item", 404, PATIENT, "POST /api/me/inbox/inbox:x/read"),
    case(F, "dev outbox without a patient", 400, ADMIN, "GET /api/dev/outbox"),
    case(F, "dev outbox of patient a/b", 400, ADMIN, "GET /api/dev/outbox?patientId=a/b"),
    case(F, "dev outbox by a supervisor", 403, SUPERVISOR, "GET /api/dev/outbox?patientId=p-1"),
    case(
        F,
        "survey report ending before it starts",
        400,
        SUPERVISOR,
        "GET /api/supervisor/surveys?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ),
    case(
        F,
        "survey report of a year",
        400,
        SUPERVISOR,
        "GET /api/supervisor/surveys?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ),
    case(
        F,
        "survey report without a zone",
        400,
        SUPERVISOR,
        "GET /api/supervisor/surveys?from=2026-01-01T00:00:00&to=2026-01-02T00:00:00Z",
    ),
    case(
        F,
        "survey report for an agent",
        403,
        AGENT,
        "GET /api/supervisor/surveys?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
    ),
]
