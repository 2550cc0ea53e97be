"""Settings: names agree everywhere, and a bad or missing one fails naming it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.config import load_settings, setting_names
from shared.kernel.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEV = {"PSC_AUTH_MODE": "dev", "PSC_DEV_JWT_SECRET": "x" * 40}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*setting_names().values(), "WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME"]:
        monkeypatch.delenv(name, raising=False)


def test_every_setting_is_in_the_sample_and_the_readme() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    readme = (ROOT / "README.md").read_text()
    for name in setting_names().values():
        assert name in sample, name
        assert re.search(rf"`{re.escape(name)}`", readme), name


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PSC_AUTH_MODE": "entra"}, "PSC_ENTRA_TENANT_ID"),
        ({"PSC_AUTH_MODE": "entra", "PSC_ENTRA_TENANT_ID": "t"}, "PSC_ENTRA_CLIENT_ID"),
        (
            {**DEV, "PSC_PATIENT_AUTHORITY": "https://x.ciamlogin.com"},
            "PSC_PATIENT_TENANT_ID, PSC_PATIENT_CLIENT_ID",
        ),
        ({**DEV, "PSC_PATIENT_TENANT_ID": "t", "PSC_PATIENT_CLIENT_ID": "c"}, "PSC_PATIENT_AUTHORITY"),
        ({**DEV, "PSC_DEV_JWT_SECRET": "short"}, "PSC_DEV_JWT_SECRET"),
        ({**DEV, "PSC_STORE": "mongodb"}, "PSC_STORE"),
        ({**DEV, "PSC_BUS": "kafka"}, "PSC_BUS"),
        ({**DEV, "PSC_STORE": "cosmos"}, "COSMOS__accountEndpoint"),
        ({**DEV, "PSC_BUS": "servicebus"}, "ServiceBusConnection__fullyQualifiedNamespace"),
        ({"PSC_AUTH_MODE": "sometimes"}, "PSC_AUTH_MODE"),
        ({**DEV, "PSC_BOT_CALLBACK_HOSTS": "bots.example.org"}, "PSC_BOT_CALLBACK_SECRET"),
        ({**DEV, "PSC_BOT_CALLBACK_HOSTS": "*"}, "PSC_BOT_CALLBACK_HOSTS"),
        ({**DEV, "PSC_BOT_CALLBACK_HOSTS": "*.org"}, "PSC_BOT_CALLBACK_HOSTS"),
        ({**DEV, "PSC_BOT_CALLBACK_HOSTS": "https://bots.example.org/cb"}, "PSC_BOT_CALLBACK_HOSTS"),
        ({**DEV, "PSC_BOT_CALLBACK_SECRET": "not-a-whsec"}, "PSC_BOT_CALLBACK_SECRET"),
        ({**DEV, "PSC_BOT_CALLBACK_SECRET": "whsec_!!!not-base64!!!"}, "PSC_BOT_CALLBACK_SECRET"),
        ({**DEV, "PSC_BOT_CALLBACK_SECRET": "whsec_c2hvcnQ="}, "PSC_BOT_CALLBACK_SECRET"),  # 5 bytes
        ({**DEV, "PSC_NOTIFY": "acs"}, "ACS__endpoint"),
        ({**DEV, "PSC_NOTIFY": "carrier-pigeon"}, "PSC_NOTIFY"),
        ({**DEV, "ACS_SMS_FROM": "0601000001"}, "ACS_SMS_FROM"),
        ({**DEV, "ACS_SMS_FROM": "ClinicName123"}, "ACS_SMS_FROM"),  # an alphanumeric id has 11 at most
        ({**DEV, "ACS_EMAIL_SENDER": "DoNotReply"}, "ACS_EMAIL_SENDER"),
    ],
)
def test_a_bad_or_missing_setting_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_settings()


def test_entra_mode_needs_the_client_id_and_not_the_app_id_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "PSC_AUTH_MODE": "entra",
        "PSC_ENTRA_TENANT_ID": "t",
        "PSC_ENTRA_CLIENT_ID": "c",
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.entra_audience is None
    assert not settings.patient_sign_in


def test_the_patient_provider_is_all_three_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    patient = {
        "PSC_PATIENT_AUTHORITY": "https://contoso.ciamlogin.com",
        "PSC_PATIENT_TENANT_ID": "t",
        "PSC_PATIENT_CLIENT_ID": "c",
    }
    for key, value in {**DEV, **patient}.items():
        monkeypatch.setenv(key, value)
    assert load_settings().patient_sign_in


def test_dev_mode_is_refused_in_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DEV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc")
    with pytest.raises(ConfigError, match="PSC_AUTH_MODE=dev"):
        load_settings()


def test_blank_settings_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DEV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COSMOS__accountEndpoint", "")
    monkeypatch.setenv("PSC_ENTRA_AUTHORITY", "")
    settings = load_settings()
    assert settings.cosmos_endpoint is None
    assert settings.entra_authority == "https://login.microsoftonline.com"


def test_secrets_stay_out_of_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DEV.items():
        monkeypatch.setenv(key, value)
    assert "x" * 40 not in repr(load_settings())


@pytest.mark.parametrize(
    "origins",
    [
        "https://portal.example.org/",  # a path never matches a browser's Origin
        "https://*.example.org",  # the host takes wildcards literally
        "*,https://portal.example.org",  # Azure ignores `*` next to other origins
        "https://portal.example.org:443",  # browsers omit the default port
        "portal.example.org",
    ],
)
def test_cors_origins_azure_would_never_match_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, origins: str
) -> None:
    for key, value in {**DEV, "PSC_CORS_ORIGINS": origins}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="PSC_CORS_ORIGINS"):
        load_settings()


def test_no_cors_origin_is_allowed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DEV.items():
        monkeypatch.setenv(key, value)
    assert load_settings().cors_allowed_origins == ()
    monkeypatch.setenv("PSC_CORS_ORIGINS", "")
    assert load_settings().cors_allowed_origins == ()


def test_bot_callbacks_are_off_until_hosts_are_listed_and_the_sample_turns_them_on_for_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.callbacks.policy import CallbackPolicy

    for key, value in DEV.items():
        monkeypatch.setenv(key, value)
    assert CallbackPolicy.from_settings(load_settings()).allowed == ()
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    for name in ("PSC_BOT_CALLBACK_HOSTS", "PSC_BOT_CALLBACK_SECRET"):
        monkeypatch.setenv(name, sample[name])
    settings = load_settings()
    policy = CallbackPolicy.from_settings(settings)
    assert policy.dev_mode
    assert {h.host for h in policy.allowed} == {"127.0.0.1", "localhost"}
    assert policy.check_url("http://localhost:3978/api/callback") == "http://localhost:3978/api/callback"
    assert sample["PSC_BOT_CALLBACK_SECRET"] not in repr(settings)


def test_a_callback_secret_of_the_specs_smallest_size_signs_its_test_vector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks test vector's key
    for key, value in {**DEV, "PSC_BOT_CALLBACK_SECRET": secret}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.bot_callback_secret == secret
    assert (
        Webhook(secret).sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek", datetime.fromtimestamp(1614265330, UTC), '{"test": 2432232314}'
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
