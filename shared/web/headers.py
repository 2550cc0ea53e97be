"""The HTTP headers routes read and answer with, each defined once with its schema and meaning.

A route declares what it reads and what it sends (`Api.route(headers=(IF_MATCH,),
response_headers=(ETAG,))`), and the OpenAPI document lists exactly that: request headers as
header parameters, response headers on the route's success responses. `Call.header()` refuses a
header its route did not declare, so the document cannot fall behind the code.

Headers every route has are not declared per route: `x-correlation-id` (in and out), and the
error answers' own (`Retry-After` on 429, `WWW-Authenticate` on 401), which the problem layer
sets and the generator documents from the status. The Standard Webhooks headers come with
`allow(..., signed_webhook=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Header:
    """A header with its JSON schema. `required`: for a request header, every call must send it;
    for a response header, every success answer carries it."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"}, hash=False)
    required: bool = False

    @property
    def key(self) -> str:
        return self.name.lower()


# ---- request headers ---------------------------------------------------------------------------

IF_MATCH = Header(
    "If-Match",
    "The `ETag` you read. The write happens only if the record is unchanged since, else 412 "
    "and nothing is written; `*` means any current version. Leave it out to write regardless.",
    {"type": "string", "minLength": 1, "examples": ['"00000000-0000-0000-0000-000000000000"']},
)
IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "Your key for this request (1-255 visible ASCII characters), kept 24 hours per caller: a "
    "retry with the same key and body answers the first result (with `Idempotent-Replayed: "
    "true`); the same key with another body is 409.",
    {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$", "examples": ["book-7f3a9c"]},
)
CORRELATION_ID = Header(
    "x-correlation-id",
    "Your id for this request (8-128 letters, digits, `.`, `_`, `:` or `-`), echoed in the "
    "answer, in problem documents and in our logs; anything else is replaced by a new id.",
    {"type": "string", "examples": ["portal-5b1f0c2e"]},
)
WEBHOOK_ID = Header(
    "webhook-id",
    "Standard Webhooks: the delivery's unique id (at most 256 printable characters). A delivery "
    "whose id was seen before is answered as a duplicate and not processed again.",
    {"type": "string", "minLength": 1, "maxLength": 256, "examples": ["msg_2b9f0e1c"]},
)
WEBHOOK_TIMESTAMP = Header(
    "webhook-timestamp",
    "Standard Webhooks: unix seconds when the delivery was signed; more than 5 minutes from "
    "our clock is 401.",
    {"type": "string", "pattern": "^[0-9]{1,12}$", "examples": ["1767603600"]},
)
WEBHOOK_SIGNATURE = Header(
    "webhook-signature",
    'Standard Webhooks: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{raw body}")>` with the '
    "key of PSC_WEBHOOK_SECRET; several space-separated while a sender rotates keys.",
    {"type": "string", "minLength": 1, "examples": ["v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="]},
)
TEAMS_SIGNATURE = Header(
    "Authorization",
    "Teams outgoing webhooks: `HMAC <base64(HMAC-SHA256(base64-decoded token, raw body))>` with "
    "the token Teams showed when the outgoing webhook was created (the team's own, or "
    "PSC_TEAMS_OUTGOING_TOKEN). Missing or wrong: 401.",
    {
        "type": "string",
        "pattern": "^HMAC [A-Za-z0-9+/=]+$",
        "examples": ["HMAC K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="],
    },
)
# Read by the edge for a route declared with `allow(..., signed_webhook=True)`, sent instead of
# an `Authorization` header.
WEBHOOK_HEADERS = (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)

# ---- response headers --------------------------------------------------------------------------

ETAG = Header(
    "ETag",
    "The version of the returned record: send it back in `If-Match` to change the record only "
    "if nobody else did since.",
    {"type": "string", "minLength": 1},
    required=True,
)
LOCATION = Header(
    "Location",
    "The path of the created record.",
    {"type": "string", "pattern": "^/api/", "examples": ["/api/appointments/appt-3f9d2c41"]},
    required=True,
)
IDEMPOTENT_REPLAYED = Header(
    "Idempotent-Replayed",
    "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`.",
    {"type": "string", "enum": ["true"]},
)
RETRY_AFTER = Header(
    "Retry-After",
    "Seconds to wait before trying again.",
    {"type": "string", "pattern": "^[0-9]+$", "examples": ["60"]},
    required=True,
)
WWW_AUTHENTICATE = Header(
    "WWW-Authenticate",
    "The authentication scheme expected: `Bearer`.",
    {"type": "string", "examples": ['Bearer realm="psc-api"']},
    required=True,
)
# Every answer carries it (the request's id, or a new one).
CORRELATION_ID_OUT = Header(CORRELATION_ID.name, "The request's correlation id.", {"type": "string"}, True)
