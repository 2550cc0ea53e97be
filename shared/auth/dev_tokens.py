"""Dev-mode tokens (PSC_AUTH_MODE=dev): HS256, iss `psc-dev`, aud `psc-api`, as the brief fixes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import jwt

DEV_ISSUER = "psc-dev"
DEV_AUDIENCE = "psc-api"


def issue_dev_token(
    secret: str,
    *,
    sub: str,
    roles: Sequence[str],
    patient_id: str | None = None,
    name: str | None = None,
    ttl_seconds: int = 8 * 3600,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": sub,
        "name": name or sub,
        "roles": list(roles),
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    if patient_id:
        claims["patient_id"] = patient_id
    return jwt.encode(claims, secret, algorithm="HS256")
