"""Token validation: Entra mode against local OpenID providers (tests/oidc.py) for the staff tenant
and the patients' External ID tenant, and dev mode as the brief fixes it. The nine token cases
the brief lists also run through the HTTP edge (tests/functions/test_identity.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.auth.dev_tokens import issue_dev_token
from shared.auth.openid import _fetch_json
from shared.auth.tokens import DevTokenValidator, EntraTokenValidator, build_validator
from shared.kernel.clock import ManualClock
from shared.kernel.errors import Unauthorized, Unavailable
from tests.oidc import (
    APP_ID_URI,
    CLIENT_ID,
    STAFF_TENANT,
    FakeTenant,
    entra_settings,
    patient_tenant,
    patient_token,
    rsa_key,
    staff_tenant,
    staff_token,
)


@pytest.fixture
def staff() -> Iterator[FakeTenant]:
    fake = staff_tenant()
    yield fake
    fake.close()


@pytest.fixture
def patients() -> Iterator[FakeTenant]:
    fake = patient_tenant()
    yield fake
    fake.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def validator(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, patients: FakeTenant | None = None
) -> Any:
    built = build_validator(entra_settings(tmp_path, staff, patients), clock)
    assert isinstance(built, EntraTokenValidator)
    return built


def bearer(token: str) -> str:
    return "Bearer " + token


async def test_a_staff_token_yields_the_oid_roles_and_provider(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    token = staff_token(staff, oid="oid-7", roles=["Agent", "ClinicalUser"])
    principal = await validator(tmp_path, clock, staff).validate(bearer(token))
    assert principal.subject == "oid-7"  # not the per-application `sub`
    assert principal.roles == {"Agent", "ClinicalUser"}
    assert principal.is_clinical
    assert principal.provider == "staff"
    assert principal.issuer == staff.v2_issuer


@pytest.mark.parametrize(
    ("version", "audience"),
    [("v2", CLIENT_ID), ("v1", APP_ID_URI), ("v1", CLIENT_ID), ("v2", APP_ID_URI)],
)
async def test_v1_and_v2_tokens_with_either_audience_are_accepted(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, version: str, audience: str
) -> None:
    token = staff_token(staff, version=version, aud=audience)
    assert (await validator(tmp_path, clock, staff).validate(bearer(token))).subject == "oid-agent-1"


async def test_without_an_app_id_uri_only_the_client_id_is_an_audience(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    settings = entra_settings(tmp_path, staff).model_copy(update={"entra_audience": None})
    checker = build_validator(settings, clock)
    assert await checker.validate(bearer(staff_token(staff, version="v1", aud=CLIENT_ID)))
    with pytest.raises(Unauthorized):
        await checker.validate(bearer(staff_token(staff, version="v1", aud=APP_ID_URI)))


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "api://someone-else"},
        {"iss": "https://login.microsoftonline.com/22222222-0000-0000-0000-000000000000/v2.0"},
        {"iss": "https://sts.windows.net/22222222-0000-0000-0000-000000000000/"},
        # Times relative to when the test runs, not to collection (a long suite ran past nbf - 60).
        {"exp": lambda: int(time.time()) - 61},  # beyond the minute of leeway
        {"nbf": lambda: int(time.time()) + 120},
        {"exp": None},
        {"oid": None},
        {"azp": None},  # an ID token: it names no client
        {"oid": 42},
    ],
)
async def test_staff_tokens_with_wrong_claims_are_rejected(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, overrides: dict[str, Any]
) -> None:
    claims = {name: value() if callable(value) else value for name, value in overrides.items()}
    with pytest.raises(Unauthorized):
        await validator(tmp_path, clock, staff).validate(bearer(staff_token(staff, **claims)))


async def test_a_v1_token_must_name_its_client_too(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    with pytest.raises(Unauthorized):
        await validator(tmp_path, clock, staff).validate(bearer(staff_token(staff, version="v1", appid=None)))


async def test_clock_skew_up_to_a_minute_is_tolerated(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    token = staff_token(staff, exp=int(time.time()) - 45)
    assert (await validator(tmp_path, clock, staff).validate(bearer(token))).subject == "oid-agent-1"


async def test_only_rs256_is_accepted(tmp_path: Path, clock: ManualClock, staff: FakeTenant) -> None:
    checker = validator(tmp_path, clock, staff)
    # Algorithm confusion: an HS256 token "signed" with the public key.
    public_pem = (
        staff.keys[staff.kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = jwt.decode(staff_token(staff), options={"verify_signature": False})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": staff.kid}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    ).rstrip(b"=")
    with pytest.raises(Unauthorized):
        await checker.validate(bearer((header + b"." + payload + b"." + signature).decode()))
    unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": staff.kid}).encode()).rstrip(b"=")
    with pytest.raises(Unauthorized):
        await checker.validate(bearer((unsigned + b"." + payload + b".").decode()))
    assert staff.fetches["jwks"] == 0  # rejected before any key was looked up


async def test_a_token_signed_by_a_key_the_tenant_does_not_publish_is_rejected(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    checker = validator(tmp_path, clock, staff)
    with pytest.raises(Unauthorized):  # a published kid, another key
        await checker.validate(bearer(staff.sign(_claims(staff), key=rsa_key(5))))
    with pytest.raises(Unauthorized):  # a kid the tenant never published
        await checker.validate(bearer(staff.sign(_claims(staff), kid="not-published", key=rsa_key(5))))


async def test_garbage_and_missing_tokens_are_401(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    checker = validator(tmp_path, clock, staff)
    for header in (None, "", "Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer a.b.c"):
        with pytest.raises(Unauthorized):
            await checker.validate(header)


# --- issuer families -----------------------------------------------------------------------


async def test_a_multi_tenant_issuer_template_is_filled_with_our_tenant(
    tmp_path: Path, clock: ManualClock
) -> None:
    templated = FakeTenant(
        STAFF_TENANT,
        v2_issuer=f"https://login.microsoftonline.com/{STAFF_TENANT}/v2.0",
        v1_issuer=f"https://sts.windows.net/{STAFF_TENANT}/",
        template_issuer=True,
    )
    try:
        checker = validator(tmp_path, clock, templated)
        assert await checker.validate(bearer(staff_token(templated)))
        other = "https://login.microsoftonline.com/33333333-0000-0000-0000-000000000000/v2.0"
        with pytest.raises(Unauthorized):
            await checker.validate(bearer(staff_token(templated, iss=other)))
    finally:
        templated.close()


async def test_patient_tokens_act_only_as_patient_whatever_roles_they_claim(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, patients: FakeTenant
) -> None:
    token = patient_token(patients, oid="p-oid", roles=["Administrator", "Agent"])
    principal = await validator(tmp_path, clock, staff, patients).validate(bearer(token))
    assert principal.roles == {"Patient"}
    assert principal.acts_as_patient_only
    assert principal.provider == "patient"
    assert principal.subject == "p-oid"
    assert principal.issuer == patients.v2_issuer
    assert principal.patient_id is None  # found through the sign-in link, never a claim


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": CLIENT_ID},  # the staff API's audience is not the patients'
        {"scp": None},  # an app-only or ID token: not a signed-in patient
        {"iss": f"https://sts.windows.net/{'9' * 8}-8888-7777-6666-555555555555/"},  # no v1.0 for patients
        {"patient_id": "p-1", "aud": "api://elsewhere"},
    ],
)
async def test_patient_tokens_with_wrong_claims_are_rejected(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, patients: FakeTenant, overrides: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized):
        await validator(tmp_path, clock, staff, patients).validate(
            bearer(patient_token(patients, **overrides))
        )


async def test_a_patient_key_cannot_sign_for_the_staff_tenant(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, patients: FakeTenant
) -> None:
    claims = jwt.decode(staff_token(staff, roles=["Administrator"]), options={"verify_signature": False})
    forged = patients.sign(claims)  # the patient tenant's key and kid, the staff issuer
    with pytest.raises(Unauthorized):
        await validator(tmp_path, clock, staff, patients).validate(bearer(forged))


async def test_patient_tokens_are_refused_when_no_patient_provider_is_configured(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, patients: FakeTenant
) -> None:
    with pytest.raises(Unauthorized):
        await validator(tmp_path, clock, staff).validate(bearer(patient_token(patients)))
    assert patients.fetches == {}


async def test_patients_sign_in_while_the_staff_tenant_metadata_is_unreachable(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant, patients: FakeTenant
) -> None:
    checker = validator(tmp_path, clock, staff, patients)
    staff.close()
    assert (await checker.validate(bearer(patient_token(patients)))).roles == {"Patient"}
    with pytest.raises(Unavailable):
        await checker.validate(bearer(staff_token(staff)))


# --- keys: caching and rotation ------------------------------------------------------------


async def test_metadata_and_keys_are_fetched_once_and_shared_by_concurrent_requests(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    checker = validator(tmp_path, clock, staff)
    await asyncio.gather(*(checker.validate(bearer(staff_token(staff))) for _ in range(10)))
    for _ in range(5):
        await checker.validate(bearer(staff_token(staff)))
    assert staff.fetches == {"v2": 1, "jwks": 1}


async def test_a_rotated_key_is_picked_up_with_one_refetch_and_unknown_kids_refetch_at_most_once_a_minute(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    checker = validator(tmp_path, clock, staff)
    await checker.validate(bearer(staff_token(staff)))
    assert staff.fetches["jwks"] == 1

    clock.advance(seconds=61)
    staff.keys = {"k-new": rsa_key(2)}  # the tenant rolls its key over
    assert await checker.validate(bearer(staff_token(staff, kid="k-new")))
    assert staff.fetches["jwks"] == 2
    with pytest.raises(Unauthorized):  # the retired key is gone with the refetch
        await checker.validate(bearer(staff.sign(_claims(staff), kid="k0", key=rsa_key(0))))

    # A burst of unknown kids (forged, or a key published later) within the minute: no refetch.
    burst = [staff.sign(_claims(staff), kid=f"forged-{n}", key=rsa_key(2)) for n in range(20)]
    for outcome in await asyncio.gather(
        *(checker.validate(bearer(t)) for t in burst), return_exceptions=True
    ):
        assert isinstance(outcome, Unauthorized)
    assert staff.fetches["jwks"] == 2

    staff.keys["k-later"] = rsa_key(3)
    clock.advance(seconds=30)
    with pytest.raises(Unauthorized):  # still inside the minute since the last fetch
        await checker.validate(bearer(staff_token(staff, kid="k-later")))
    assert staff.fetches["jwks"] == 2
    clock.advance(seconds=31)
    assert await checker.validate(bearer(staff_token(staff, kid="k-later")))
    assert staff.fetches["jwks"] == 3
    assert await checker.validate(bearer(staff_token(staff, kid="k-new")))
    assert staff.fetches["jwks"] == 3
    assert staff.fetches["v2"] == 1


async def test_keys_older_than_a_day_are_refreshed_and_kept_if_the_tenant_is_unreachable(
    tmp_path: Path, clock: ManualClock, staff: FakeTenant
) -> None:
    checker = validator(tmp_path, clock, staff)
    token = staff_token(staff)
    await checker.validate(bearer(token))
    clock.advance(hours=25)
    await checker.validate(bearer(token))
    assert staff.fetches == {"v2": 2, "jwks": 2}
    staff.close()
    clock.advance(hours=25)
    assert (await checker.validate(bearer(token))).subject == "oid-agent-1"


def _claims(staff: FakeTenant) -> dict[str, Any]:
    return jwt.decode(staff_token(staff), options={"verify_signature": False})


@pytest.mark.parametrize(
    "url",
    [
        "http://login.example.org/t/v2.0/.well-known/openid-configuration",
        "http://localhost.example.org/keys",
        "http://127.0.0.1.nip.io/keys",
        "file:///etc/passwd",
        "ftp://127.0.0.1/keys",
    ],
)
def test_identity_metadata_is_fetched_only_over_https_or_from_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="plain HTTP"):
        _fetch_json(url)


def test_identity_metadata_nested_too_deep_is_refused_as_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from shared.auth import openid

    monkeypatch.setattr(openid._OPENER, "open", lambda url, timeout: io.BytesIO(b"[" * 100_000))
    with pytest.raises(ValueError, match="nested deeper"):
        _fetch_json("https://login.example.org/t/discovery/v2.0/keys")


def test_identity_metadata_never_follows_a_redirect(staff: FakeTenant) -> None:
    with pytest.raises(urllib.error.HTTPError):
        _fetch_json(f"{staff.authority}/redirect")
    assert staff.fetches == {}


# --- dev mode ------------------------------------------------------------------------------


async def test_dev_tokens_follow_the_brief() -> None:
    secret = "s" * 40
    token = issue_dev_token(secret, sub="u1", roles=["Patient"], patient_id="p-9", name="Pat")
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="psc-api")
    assert claims["iss"] == "psc-dev"
    assert claims["roles"] == ["Patient"]
    principal = await DevTokenValidator(secret).validate(f"Bearer {token}")
    assert principal.patient_id == "p-9"
    assert principal.subject == "u1"
    assert principal.provider == "dev"
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
