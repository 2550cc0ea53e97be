"""The consult card (Adaptive Card 1.5, what Teams renders) inside the Workflows webhook payload,
and the reference code that ties a provider's reply to its consult. Pure.

The card carries what a provider needs to answer and nothing that identifies the patient: the
reference code, who asks (the agent's name), the triage's urgency and specialty, the question and
how to reply. Never the patient's name, date of birth or contact details, nor the bot's reason
(free text from the patient); the question is checked for the patient's own details before it is
sent (shared/consults/consults.py).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

# Crockford base32: no I, L, O, U (nothing to misread when a provider types it back).
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
_CODE_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])([0-9A-Za-z]{4})-?([0-9A-Za-z]{4})(?![0-9A-Za-z])")
_MISREAD = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_code() -> str:
    """8 random Crockford base32 characters (40 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))


def shown(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def codes_in(text: str) -> list[str]:
    """Reference codes a reply may quote, in order, normalised as stored (upper case, I/L → 1,
    O → 0, no dash); candidates only: the caller looks each up."""
    found: list[str] = []
    for first, second in _CODE_IN_TEXT.findall(text):
        code = (first + second).upper().translate(_MISREAD)
        if all(c in _ALPHABET for c in code) and code not in found:
            found.append(code)
    return found


def consult_card(
    *,
    code: str,
    agent_name: str,
    question: str,
    urgency: str | None,
    specialty: str | None,
    reply_to: str,
) -> dict[str, Any]:
    """The Adaptive Card 1.5 for one consult. `reply_to` names the outgoing webhook to mention."""
    facts = [{"title": "Reference", "value": shown(code)}, {"title": "From", "value": agent_name}]
    if urgency:
        facts.append({"title": "Urgency", "value": urgency})
    if specialty:
        facts.append({"title": "Specialty", "value": specialty})
    return {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "body": [
            {
                "type": "TextBlock",
                "text": "Consult request from the patient service center",
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
            {"type": "TextBlock", "text": question, "wrap": True},
            {
                "type": "TextBlock",
                "text": f"To answer, reply in this channel: @{reply_to} {shown(code)} "
                "followed by your answer.",
                "wrap": True,
                "isSubtle": True,
                "size": "Small",
            },
        ],
    }


def workflow_payload(card: dict[str, Any]) -> dict[str, Any]:
    """What a Workflows webhook ("When a Teams webhook request is received") takes."""
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }
