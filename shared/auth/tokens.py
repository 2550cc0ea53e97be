"""Bearer-token validation, in our code (the brief forbids trusting `x-ms-client-principal`).

Entra mode: RS256 only (the algorithm is never taken from the token), signing keys from the
tenant's JWKS found through its OpenID metadata, exact issuer from that metadata, audience = our
app ID URI, `exp`/`nbf` with at most five minutes of clock skew. Dev mode: HS256 with
PSC_DEV_JWT_SECRET, iss `psc-dev`, aud `psc-api`.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import jwt

from shared.auth.dev_tokens import DEV_AUDIENCE, DEV_ISSUER
from shared.auth.principal import Principal
from shared.config import Settings
from shared.errors import Unauthorized, Unavailable

CLOCK_SKEW_SECONDS = 300
METADATA_TTL_SECONDS = 24 * 3600


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("A bearer token is required.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer token is required.")
    return token.strip()


def _principal(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("The token's roles claim is malformed.")
    patient_id = claims.get("patient_id")
    return Principal(
        subject=str(claims["sub"]),
        name=claims.get("name"),
        roles=frozenset(roles),
        patient_id=str(patient_id) if patient_id else None,
    )


class DevTokenValidator:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def validate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=DEV_AUDIENCE,
                issuer=DEV_ISSUER,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token ({type(exc).__name__}).") from None
        return _principal(claims)


@dataclass
class _Metadata:
    issuer: str
    jwks: jwt.PyJWKClient
    fetched_at: float = field(default_factory=time.monotonic)


def _fetch_json(url: str) -> dict[str, Any]:
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise Unavailable("Refusing to fetch identity metadata over plain HTTP.")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - scheme checked above
        data: dict[str, Any] = json.loads(response.read())
    return data


class EntraTokenValidator:
    """Validates Entra ID access tokens. Metadata and keys are cached for a day; an unknown `kid`
    makes PyJWKClient refetch the key set once (key rollover)."""

    def __init__(
        self, *, tenant_id: str, audience: str, authority: str, refresh_cooldown_seconds: float = 30
    ) -> None:
        self._refresh_cooldown = refresh_cooldown_seconds
        self._metadata_url = f"{authority.rstrip('/')}/{tenant_id}/v2.0/.well-known/openid-configuration"
        self._audience = audience
        self._tenant_id = tenant_id
        self._metadata: _Metadata | None = None
        self._lock = asyncio.Lock()

    async def _load(self) -> _Metadata:
        current = self._metadata
        if current and time.monotonic() - current.fetched_at < METADATA_TTL_SECONDS:
            return current
        async with self._lock:
            current = self._metadata
            if current and time.monotonic() - current.fetched_at < METADATA_TTL_SECONDS:
                return current
            try:
                doc = await asyncio.to_thread(_fetch_json, self._metadata_url)
            except (OSError, ValueError) as exc:
                raise Unavailable(f"Identity metadata unavailable ({type(exc).__name__}).") from None
            issuer = str(doc["issuer"]).replace("{tenantid}", self._tenant_id)
            jwks = jwt.PyJWKClient(
                str(doc["jwks_uri"]),
                cache_keys=True,
                lifespan=METADATA_TTL_SECONDS,
                # An unknown kid refetches at most this often, so forged kids cannot hammer Entra.
                cooldown_duration=self._refresh_cooldown,
            )
            self._metadata = _Metadata(issuer=issuer, jwks=jwks)
            return self._metadata

    async def validate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        metadata = await self._load()
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256":
                raise jwt.InvalidAlgorithmError("only RS256 is accepted")
            key = await asyncio.to_thread(metadata.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=metadata.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError:
            raise Unavailable("Signing keys unavailable.") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token ({type(exc).__name__}).") from None
        return _principal(claims)


TokenValidator = DevTokenValidator | EntraTokenValidator


def build_validator(settings: Settings) -> TokenValidator:
    if settings.auth_mode == "dev":
        assert settings.dev_jwt_secret
        return DevTokenValidator(settings.dev_jwt_secret)
    assert settings.entra_tenant_id
    assert settings.entra_audience
    return EntraTokenValidator(
        tenant_id=settings.entra_tenant_id,
        audience=settings.entra_audience,
        authority=settings.entra_authority,
    )
