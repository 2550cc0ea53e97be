"""The tokens the embedded hub accepts, checked as Azure Web PubSub checks access-key tokens:
HS256 signed with the hub's access key (the key's UTF-8 text is the HMAC key, as the SDK signs),
`exp` required and in the future; `aud` is `<endpoint>/client/hubs/<hub>` for a client and the
full request URL (query included) for a REST call (Web PubSub docs: reference-rest-api-data-plane,
concept-client-protocols; the SDK's `get_token_by_key` and `JwtCredentialPolicy`).

A client token names its user (`sub`), the groups it joins on connect (`webpubsub.group`) and its
roles (`role`); each claim may be one string or a list, as the service takes repeated claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

# The algorithm is ours, never the token's: an `alg: none` or RS256 header is refused.
ALGORITHMS = ["HS256"]


class TokenRefused(Exception):
    """Why a token was refused; answered as 401 without saying which check failed."""


@dataclass(frozen=True)
class ClientClaims:
    user_id: str | None
    groups: tuple[str, ...]
    roles: frozenset[str]


def client_claims(token: str | None, key: str, audience: str) -> ClientClaims:
    claims = _verified(token, key)
    if not _same_url(claims.get("aud"), audience, path_case=False):
        raise TokenRefused("the token is for another endpoint or hub")
    user = claims.get("sub")
    if user is not None and (not isinstance(user, str) or not user):
        raise TokenRefused("sub must be one string")
    return ClientClaims(
        user_id=user,
        groups=tuple(dict.fromkeys(_strings(claims.get("webpubsub.group"), "webpubsub.group"))),
        roles=frozenset(_strings(claims.get("role"), "role")),
    )


def check_rest_token(authorization: str | None, key: str, request_url: str) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise TokenRefused("a bearer token is required")
    claims = _verified(token.strip(), key)
    if not _same_url(claims.get("aud"), request_url, path_case=True):
        raise TokenRefused("the token's audience is not this request's URL")


def _verified(token: str | None, key: str) -> dict[str, object]:
    if not token:
        raise TokenRefused("no access token")
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            options={"require": ["exp"], "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenRefused(type(exc).__name__) from None
    return claims


def _strings(value: object, name: str) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise TokenRefused(f"{name} must be strings")
    return values


def _same_url(aud: object, expected: str, *, path_case: bool) -> bool:
    """Scheme and host compare case-insensitively (the SDK lower-cases the endpoint); a client
    audience's path too (hub names are case-insensitive); a REST audience's path and query exactly."""
    if not isinstance(aud, str):
        return False
    got, want = urlsplit(aud), urlsplit(expected)
    if (got.scheme.lower(), got.netloc.lower()) != (want.scheme.lower(), want.netloc.lower()):
        return False
    if path_case:
        return (got.path, got.query) == (want.path, want.query)
    return got.path.rstrip("/").lower() == want.path.rstrip("/").lower() and not got.query
