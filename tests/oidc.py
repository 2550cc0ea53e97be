"""A local OpenID provider for tests: discovery documents and a key set served on 127.0.0.1 from a
thread, RSA keys made with `cryptography`, tokens minted with PyJWT, fetches counted.

One `FakeTenant` plays one Entra tenant: the staff tenant (v2.0 and v1.0 discovery documents, as
Entra publishes them) or the patients' External ID tenant (v2.0 only, a ciamlogin.com issuer).
Issuers are the strings Entra uses; only the documents and keys are fetched, from loopback.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.config import Settings
from tests.conftest import make_settings

STAFF_TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-0000-4000-8000-000000000001"
APP_ID_URI = "api://psc-test"
PATIENT_TENANT = "99999999-8888-7777-6666-555555555555"
PATIENT_CLIENT_ID = "bbbbbbbb-0000-4000-8000-000000000002"
PORTAL_CLIENT_ID = "cccccccc-0000-4000-8000-000000000003"
CONSOLE_CLIENT_ID = "dddddddd-0000-4000-8000-000000000004"


@cache
def rsa_key(n: int) -> rsa.RSAPrivateKey:
    """Keys are slow to make; tests share a few."""
    return rsa.generate_private_key(65537, 2048)


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "kid": kid, "n": _b64(numbers.n), "e": _b64(numbers.e)}


class FakeTenant:
    """Serves `/{tenant}/v2.0/.well-known/openid-configuration`, optionally the v1.0 document
    `/{tenant}/.well-known/openid-configuration`, and the key sets they point to."""

    def __init__(
        self,
        tenant: str,
        *,
        v2_issuer: str,
        v1_issuer: str | None = None,
        template_issuer: bool = False,
        key: int = 0,
    ) -> None:
        self.tenant = tenant
        self.v2_issuer = v2_issuer
        self.v1_issuer = v1_issuer
        self.template_issuer = template_issuer
        self.keys: dict[str, rsa.RSAPrivateKey] = {f"k{key}": rsa_key(key)}
        self.fetches: Counter[str] = Counter()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/redirect":  # somewhere else; identity metadata never follows it
                    self.send_response(302)
                    self.send_header(
                        "Location", f"{fake.authority}/{fake.tenant}/v2.0/.well-known/openid-configuration"
                    )
                    self.end_headers()
                    return
                body = fake.serve(self.path)
                if body is None:
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
        self.authority = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def serve(self, path: str) -> dict[str, Any] | None:
        base = f"{self.authority}/{self.tenant}"
        if path == f"/{self.tenant}/v2.0/.well-known/openid-configuration":
            self.fetches["v2"] += 1
            issuer = (
                self.v2_issuer.replace(self.tenant, "{tenantid}") if self.template_issuer else self.v2_issuer
            )
            return {"issuer": issuer, "jwks_uri": f"{base}/discovery/v2.0/keys"}
        if path == f"/{self.tenant}/.well-known/openid-configuration" and self.v1_issuer:
            self.fetches["v1"] += 1
            return {"issuer": self.v1_issuer, "jwks_uri": f"{base}/discovery/keys"}
        if path in (f"/{self.tenant}/discovery/v2.0/keys", f"/{self.tenant}/discovery/keys"):
            self.fetches["jwks"] += 1
            return {"keys": [public_jwk(kid, key) for kid, key in self.keys.items()]}
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def kid(self) -> str:
        return next(iter(self.keys))

    def sign(
        self, claims: dict[str, Any], *, kid: str | None = None, key: rsa.RSAPrivateKey | None = None
    ) -> str:
        kid = kid or self.kid
        signing_key = key or self.keys[kid]
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": kid})


def _times(lifetime: int = 3600) -> dict[str, int]:
    now = int(time.time())
    return {"iat": now, "nbf": now, "exp": now + lifetime}


def staff_tenant() -> FakeTenant:
    return FakeTenant(
        STAFF_TENANT,
        v2_issuer=f"https://login.microsoftonline.com/{STAFF_TENANT}/v2.0",
        v1_issuer=f"https://sts.windows.net/{STAFF_TENANT}/",
        key=0,
    )


def patient_tenant() -> FakeTenant:
    return FakeTenant(
        PATIENT_TENANT,
        v2_issuer=f"https://{PATIENT_TENANT}.ciamlogin.com/{PATIENT_TENANT}/v2.0",
        key=1,
    )


def staff_token(
    tenant: FakeTenant,
    *,
    oid: str = "oid-agent-1",
    roles: list[str] | None = None,
    version: str = "v2",
    kid: str | None = None,
    **claims: Any,
) -> str:
    """An access token as Entra issues it for our API: v2.0 (`aud` = client id, `azp`) or v1.0
    (`aud` = App ID URI, `appid`)."""
    base: dict[str, Any] = {
        "oid": oid,
        "sub": f"pairwise-{oid}",  # differs per application: never the staff id
        "tid": tenant.tenant,
        "name": "Staff Member",
        "roles": ["Agent"] if roles is None else roles,
        **_times(),
    }
    if version == "v2":
        base |= {"iss": tenant.v2_issuer, "aud": CLIENT_ID, "azp": CONSOLE_CLIENT_ID, "ver": "2.0"}
    else:
        base |= {"iss": tenant.v1_issuer, "aud": APP_ID_URI, "appid": CONSOLE_CLIENT_ID, "ver": "1.0"}
    base.update(claims)
    return tenant.sign(base, kid=kid)


def patient_token(
    tenant: FakeTenant, *, oid: str = "oid-patient-1", kid: str | None = None, **claims: Any
) -> str:
    """A patient's delegated access token from the External ID tenant."""
    base: dict[str, Any] = {
        "iss": tenant.v2_issuer,
        "aud": PATIENT_CLIENT_ID,
        "azp": PORTAL_CLIENT_ID,
        "scp": "Patient.Access",
        "oid": oid,
        "sub": f"pairwise-{oid}",
        "tid": tenant.tenant,
        "name": "Patient",
        "ver": "2.0",
        **_times(),
    }
    base.update(claims)
    return tenant.sign(base, kid=kid)


def entra_settings(data_dir: Path, staff: FakeTenant, patient: FakeTenant | None = None) -> Settings:
    values: dict[str, Any] = {
        "PSC_AUTH_MODE": "entra",
        "PSC_ENTRA_AUTHORITY": staff.authority,
        "PSC_ENTRA_TENANT_ID": staff.tenant,
        "PSC_ENTRA_CLIENT_ID": CLIENT_ID,
        "PSC_ENTRA_AUDIENCE": APP_ID_URI,
    }
    if patient is not None:
        values |= {
            "PSC_PATIENT_AUTHORITY": patient.authority,
            "PSC_PATIENT_TENANT_ID": patient.tenant,
            "PSC_PATIENT_CLIENT_ID": PATIENT_CLIENT_ID,
        }
    return make_settings(data_dir, **values)
