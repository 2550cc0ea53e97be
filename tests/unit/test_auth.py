"""Token validation: Entra mode against a locally generated RSA key and a JWKS served on loopback,
and dev mode as the brief fixes it."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth.dev_tokens import issue_dev_token
from shared.auth.tokens import DevTokenValidator, EntraTokenValidator
from shared.errors import Unauthorized

TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://psc"


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class FakeTenant:
    """OpenID metadata + JWKS on 127.0.0.1, counting fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"k1": rsa.generate_private_key(65537, 2048)}
        self.fetches: dict[str, int] = {"metadata": 0, "jwks": 0}
        tenant = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                if self.path.endswith("/.well-known/openid-configuration"):
                    tenant.fetches["metadata"] += 1
                    body = {"issuer": f"{base}/{TENANT}/v2.0", "jwks_uri": f"{base}/keys"}
                elif self.path == "/keys":
                    tenant.fetches["jwks"] += 1
                    body = {"keys": [tenant.jwk(kid) for kid in tenant.keys]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def jwk(self, kid: str) -> dict[str, str]:
        numbers = self.keys[kid].public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }

    @property
    def issuer(self) -> str:
        return f"{self.base}/{TENANT}/v2.0"

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "agent-object-id",
            "name": "Agent Smith",
            "roles": ["Agent"],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def validator(self) -> EntraTokenValidator:
        return EntraTokenValidator(
            tenant_id=TENANT, audience=AUDIENCE, authority=self.base, refresh_cooldown_seconds=0
        )


@pytest.fixture
def tenant() -> Iterator[FakeTenant]:
    fake = FakeTenant()
    yield fake
    fake.server.shutdown()


async def test_a_valid_entra_token_yields_the_principal_and_its_roles(tenant: FakeTenant) -> None:
    principal = await tenant.validator().validate("Bearer " + tenant.token(roles=["Agent", "ClinicalUser"]))
    assert principal.subject == "agent-object-id"
    assert principal.roles == {"Agent", "ClinicalUser"}
    assert principal.is_clinical


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "api://someone-else"},
        {"iss": "https://login.microsoftonline.com/other-tenant/v2.0"},
        {"exp": int(time.time()) - 301},  # beyond the five-minute skew
        {"nbf": int(time.time()) + 600},
        {"exp": None},
        {"sub": None},
    ],
)
async def test_entra_tokens_with_wrong_claims_are_rejected(
    tenant: FakeTenant, overrides: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized):
        await tenant.validator().validate("Bearer " + tenant.token(**overrides))


async def test_clock_skew_up_to_five_minutes_is_tolerated(tenant: FakeTenant) -> None:
    token = tenant.token(exp=int(time.time()) - 240)
    assert (await tenant.validator().validate("Bearer " + token)).subject == "agent-object-id"


async def test_only_rs256_is_accepted(tenant: FakeTenant) -> None:
    validator = tenant.validator()
    # Algorithm confusion: an HS256 token "signed" with the public key.
    public_pem = (
        tenant.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = jwt.decode(tenant.token(), options={"verify_signature": False})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    ).rstrip(b"=")
    with pytest.raises(Unauthorized):
        await validator.validate("Bearer " + (header + b"." + payload + b"." + signature).decode())
    unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    with pytest.raises(Unauthorized):
        await validator.validate("Bearer " + (unsigned + b"." + payload + b".").decode())


async def test_a_token_from_an_unknown_key_is_rejected(tenant: FakeTenant) -> None:
    stranger = rsa.generate_private_key(65537, 2048)
    now = int(time.time())
    token = jwt.encode(
        {"iss": tenant.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 60},
        stranger,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(Unauthorized):
        await tenant.validator().validate("Bearer " + token)


async def test_metadata_and_keys_are_cached_and_a_new_key_is_picked_up(tenant: FakeTenant) -> None:
    validator = tenant.validator()
    for _ in range(5):
        await validator.validate("Bearer " + tenant.token())
    assert tenant.fetches == {"metadata": 1, "jwks": 1}
    tenant.keys["k2"] = rsa.generate_private_key(65537, 2048)  # key rollover
    assert (await validator.validate("Bearer " + tenant.token(kid="k2"))).subject == "agent-object-id"
    assert tenant.fetches["metadata"] == 1


async def test_dev_tokens_follow_the_brief() -> None:
    secret = "s" * 40
    token = issue_dev_token(secret, sub="u1", roles=["Patient"], patient_id="p-9", name="Pat")
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="psc-api")
    assert claims["iss"] == "psc-dev"
    assert claims["roles"] == ["Patient"]
    principal = await DevTokenValidator(secret).validate(f"Bearer {token}")
    assert principal.patient_id == "p-9"
    assert principal.acts_as_patient_only


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "someone-else"},
        {"aud": "other-api"},
    ],
)
async def test_dev_tokens_with_wrong_issuer_or_audience_are_rejected(claims: dict[str, Any]) -> None:
    secret = "s" * 40
    base = {"sub": "u", "roles": ["Agent"], "exp": int(time.time()) + 60, "iss": "psc-dev", "aud": "psc-api"}
    token = jwt.encode({**base, **claims}, secret, algorithm="HS256")
    with pytest.raises(Unauthorized):
        await DevTokenValidator(secret).validate(f"Bearer {token}")
