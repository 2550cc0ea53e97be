"""The bad-input corpus for the transcript route: each a 4xx problem that reads no archive and
writes nothing (no audit record either). The world's conversation `c-1` is live (no transcript)
and held by `agent-1`."""

from __future__ import annotations

from tests.conftest import token
from tests.hardening.corpus import ANON, Case, case
from tests.hardening.world import ADMIN, PATIENT, SUPERVISOR

OTHER_AGENT = token("Agent", sub="agent-9")
BOT = token("Bot.Escalate", sub="bot-1")
T = "GET /api/conversations/c-1/transcript"

K = "transcripts"
TRANSCRIPTS: list[Case] = [
    case(K, "transcript of a live conversation", 404, SUPERVISOR, T),
    case(
        K,
        "transcript of an unknown conversation",
        404,
        SUPERVISOR,
        "GET /api/conversations/c-nobody/transcript",
    ),
    case(K, "transcript for the patient", 403, PATIENT, T),
    case(K, "transcript for another agent", 404, OTHER_AGENT, T),
    case(K, "transcript for an administrator", 403, ADMIN, T),
    case(K, "transcript for the bot", 403, BOT, T),
    case(K, "transcript without a token", 401, ANON, T),
    case(K, "transcript of an id with a slash", 400, SUPERVISOR, "GET /api/conversations/c%2F1/transcript"),
    case(K, "transcript of an id with a space", 400, SUPERVISOR, "GET /api/conversations/c%201/transcript"),
    case(
        K,
        "transcript of a 101-character id",
        400,
        SUPERVISOR,
        f"GET /api/conversations/{'c' * 101}/transcript",
    ),
    case(K, "transcript asked with a body", 400, SUPERVISOR, T, [1]),
]
