"""Identifiers: one type for every id we own, one for ids that come from outside.

`Id` — patients, appointments, providers, queues, agents, conversations, slots, lookups: letters,
digits and `- _ . : @`, 1-100 characters, never `.` or `..`. Cosmos DB refuses `/ \\ ? #` in ids
and some tools treat `.`/`..` as path steps; 100 leaves room for an event's message id
`<id>:<version>.<n>` inside Service Bus's 128. Our derived ids fit (`c-<hex>`, `prov-<hex>`,
`<providerId>.<YYYYMMDDTHHMM>Z`, `webhook:<sha256>`) as do Entra object ids (GUIDs).

`ExternalId` — ids other systems chose (a bot's conversation id, a Teams id): any printable
character, 1-512. They are never used raw as a document id or inside a query: we store them under
a hash of the value (see shared/escalations/intake.py `conversation_id_for`).

Dependency-free on purpose (pydantic only): the edge, the domain and the adapters all use it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

MAX_ID = 100
MAX_EXTERNAL_ID = 512
ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,100}$"
_ID = re.compile(ID_PATTERN)
ID_RULE = f"must be 1-{MAX_ID} letters, digits or - _ . : @ (not . or ..)"
EXTERNAL_ID_RULE = f"must be 1-{MAX_EXTERNAL_ID} printable characters"


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None and value not in (".", "..")


def check_id(value: str) -> str:
    """`value` if it is an `Id`, else ValueError (a message that never repeats the value)."""
    if not is_id(value):
        raise ValueError(ID_RULE)
    return value


def check_external_id(value: str) -> str:
    if not (isinstance(value, str) and 1 <= len(value) <= MAX_EXTERNAL_ID and value.isprintable()):
        raise ValueError(EXTERNAL_ID_RULE)
    return value


Id = Annotated[
    str,
    AfterValidator(check_id),
    WithJsonSchema({"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": MAX_ID}),
]
ExternalId = Annotated[
    str,
    AfterValidator(check_external_id),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_EXTERNAL_ID,
            "description": "Any printable characters (no control characters).",
        }
    ),
]
