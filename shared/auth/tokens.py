"""Bearer-token validation, in our code (the brief forbids trusting `x-ms-client-principal`).

Entra mode accepts tokens from two providers, each through its OpenID discovery documents
(`shared/auth/openid.py` keeps their keys):

* **staff** — the organisation's tenant: v2.0 tokens (issuer from
  `{PSC_ENTRA_AUTHORITY}/{tenant}/v2.0/.well-known/openid-configuration`) and v1.0 tokens (issuer
  `https://sts.windows.net/{tenant}/`, from the tenant's v1.0 document, as Microsoft says a v1.0
  token is validated); `aud` = PSC_ENTRA_CLIENT_ID or PSC_ENTRA_AUDIENCE (the App ID URI);
* **patient** (optional) — the patients' External ID tenant, v2.0 only, `aud` =
  PSC_PATIENT_CLIENT_ID; its tokens only ever act as Patient (`Principal.__post_init__`).

A token is routed to a provider by its unverified `iss`, matched exactly against the configured
issuers, then fully verified against that provider alone: RS256 only (never the token's `alg`),
the key named by `kid` from that provider's key set, exact issuer, audience, `exp`/`nbf` with
LEEWAY_SECONDS of clock skew, and the identity claim `oid` (Entra's `sub` differs per application;
`oid` is the account). Access tokens only: staff tokens must name their client (`azp` in v2.0,
`appid` in v1.0), patient tokens must carry delegated scopes (`scp`); ID tokens carry neither.
Anything invalid is 401; a valid token without the route's role is 403 (shared/web/api.py).

Dev mode: HS256 with PSC_DEV_JWT_SECRET, iss `psc-dev`, aud `psc-api`, identity claim `sub`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jwt

from shared.auth.dev_tokens import DEV_AUDIENCE, DEV_ISSUER
from shared.auth.openid import OpenIdProvider
from shared.auth.principal import Principal
from shared.kernel.clock import Clock
from shared.kernel.errors import Unauthorized, Unavailable

if TYPE_CHECKING:
    from shared.config import Settings

# Clock skew allowed on exp/nbf: Entra and our instances keep NTP time; a minute covers the rest.
LEEWAY_SECONDS = 60


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("A bearer token is required.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer token is required.")
    return token.strip()


def _roles(claims: dict[str, Any]) -> frozenset[str]:
    roles = claims.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("The token's roles claim is malformed.")
    return frozenset(roles)


def _name(claims: dict[str, Any]) -> str | None:
    name = claims.get("name")
    return name if isinstance(name, str) else None


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
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token ({type(exc).__name__}).") from None
        patient_id = claims.get("patient_id")
        return Principal(
            subject=str(claims["sub"]),
            name=_name(claims),
            roles=_roles(claims),
            patient_id=str(patient_id) if patient_id else None,
            provider="dev",
            issuer=DEV_ISSUER,
        )


@dataclass(frozen=True)
class Issuer:
    """One issuer a provider signs as: its discovery document and the claims its tokens need
    besides exp, iss, aud and oid."""

    openid: OpenIdProvider
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrustedProvider:
    """An identity provider we accept tokens from, and what they may do."""

    kind: Literal["staff", "patient"]
    issuers: tuple[Issuer, ...]
    audiences: tuple[str, ...]


def _discovery(authority: str, tenant_id: str, version: Literal["v1", "v2"]) -> str:
    path = "/v2.0" if version == "v2" else ""
    return f"{authority.rstrip('/')}/{tenant_id}{path}/.well-known/openid-configuration"


def staff_provider(
    *, authority: str, tenant_id: str, client_id: str, audience: str | None, clock: Clock
) -> TrustedProvider:
    def issuer(version: Literal["v1", "v2"], client_claim: str) -> Issuer:
        openid = OpenIdProvider(_discovery(authority, tenant_id, version), tenant_id=tenant_id, clock=clock)
        return Issuer(openid, required=(client_claim,))

    return TrustedProvider(
        kind="staff",
        issuers=(issuer("v2", "azp"), issuer("v1", "appid")),
        audiences=tuple(a for a in (client_id, audience) if a),
    )


def patient_provider(*, authority: str, tenant_id: str, client_id: str, clock: Clock) -> TrustedProvider:
    openid = OpenIdProvider(_discovery(authority, tenant_id, "v2"), tenant_id=tenant_id, clock=clock)
    return TrustedProvider(
        kind="patient", issuers=(Issuer(openid, required=("scp",)),), audiences=(client_id,)
    )


class EntraTokenValidator:
    """Validates Entra ID (and External ID) access tokens; see the module docstring."""

    def __init__(self, providers: Sequence[TrustedProvider]) -> None:
        self._providers = tuple(providers)

    async def _match(self, iss: str) -> tuple[TrustedProvider, Issuer] | None:
        candidates = [(p, i) for p in self._providers for i in p.issuers]
        # Issuers already known first, so a patient's token never waits on a staff document.
        for provider, issuer in candidates:
            if issuer.openid.known_issuer == iss:
                return provider, issuer
        unreachable = False
        for provider, issuer in candidates:
            if issuer.openid.known_issuer is not None:
                continue
            try:
                if await issuer.openid.issuer() == iss:
                    return provider, issuer
            except Unavailable:
                unreachable = True
        if unreachable:
            raise Unavailable("Identity metadata unavailable.")
        return None

    async def validate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token ({type(exc).__name__}).") from None
        if header.get("alg") != "RS256":
            raise Unauthorized("Invalid token (only RS256 is accepted).")
        kid, iss = header.get("kid"), unverified.get("iss")
        if not (isinstance(kid, str) and kid and isinstance(iss, str) and iss):
            raise Unauthorized("Invalid token (no kid or iss).")
        match = await self._match(iss)
        if match is None:
            raise Unauthorized("Invalid token (untrusted issuer).")
        provider, issuer = match
        key = await issuer.openid.key(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=list(provider.audiences),
                issuer=iss,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "oid", *issuer.required]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token ({type(exc).__name__}).") from None
        oid = claims["oid"]
        if not isinstance(oid, str) or not oid:
            raise Unauthorized("Invalid token (oid).")
        staff = provider.kind == "staff"
        return Principal(
            subject=oid,
            name=_name(claims) if staff else None,  # a patient's name is PHI, and nothing here needs it
            roles=_roles(claims) if staff else frozenset(),
            provider=provider.kind,
            issuer=iss,
        )


TokenValidator = DevTokenValidator | EntraTokenValidator


def build_validator(settings: Settings, clock: Clock) -> TokenValidator:
    if settings.auth_mode == "dev":
        assert settings.dev_jwt_secret
        return DevTokenValidator(settings.dev_jwt_secret)
    assert settings.entra_tenant_id
    assert settings.entra_client_id
    providers = [
        staff_provider(
            authority=settings.entra_authority,
            tenant_id=settings.entra_tenant_id,
            client_id=settings.entra_client_id,
            audience=settings.entra_audience,
            clock=clock,
        )
    ]
    if settings.patient_sign_in:
        assert settings.patient_authority
        assert settings.patient_tenant_id
        assert settings.patient_client_id
        providers.append(
            patient_provider(
                authority=settings.patient_authority,
                tenant_id=settings.patient_tenant_id,
                client_id=settings.patient_client_id,
                clock=clock,
            )
        )
    return EntraTokenValidator(providers)
