"""The ACS channel against a real Communication Services resource, keyless (the signed-in identity
through DefaultAzureCredential, with Communication and Email Service Owner on the resource).

Set `PSC_TEST_ACS_ENDPOINT` (https://<name>.<geo>.communication.azure.com) and, for e-mail,
`PSC_TEST_ACS_EMAIL_SENDER` and `PSC_TEST_ACS_EMAIL_TO`; for SMS, `PSC_TEST_ACS_SMS_FROM` and
`PSC_TEST_ACS_SMS_TO` (a number you own: a real message is sent). Each test sends one message twice
with the same notification id and checks that ACS answered the repeat with the first answer, which
is what "never twice" rests on."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest

from shared.adapters.acs_notify import AcsNotifier
from shared.config import Settings
from shared.kernel.clock import SystemClock
from shared.kernel.notify import Envelope, email_operation_id

pytestmark = pytest.mark.integration


def _required(*names: str) -> dict[str, str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"ACS integration skipped: set {', '.join(missing)} (a real message is sent)")
    return {name: os.environ[name] for name in names}


def _notifier(env: dict[str, str]) -> AcsNotifier:
    settings = Settings(
        PSC_AUTH_MODE="dev",
        PSC_DEV_JWT_SECRET="x" * 40,
        PSC_NOTIFY="acs",
        ACS__endpoint=env["PSC_TEST_ACS_ENDPOINT"],
        ACS_SMS_FROM=env.get("PSC_TEST_ACS_SMS_FROM") or None,
        ACS_EMAIL_SENDER=env.get("PSC_TEST_ACS_EMAIL_SENDER") or None,
    )
    return AcsNotifier.from_settings(settings, SystemClock())


def _envelope() -> Envelope:
    return Envelope(f"it:{uuid.uuid4().hex}", "p-it", "reminder", "a-it", datetime.now(UTC))


async def test_a_repeated_email_is_one_operation() -> None:
    env = _required("PSC_TEST_ACS_ENDPOINT", "PSC_TEST_ACS_EMAIL_SENDER", "PSC_TEST_ACS_EMAIL_TO")
    notifier = _notifier(env)
    envelope = _envelope()
    try:
        first = await notifier.send_email(
            env["PSC_TEST_ACS_EMAIL_TO"], "PSC integration test", "Sent once.", envelope=envelope
        )
        again = await notifier.send_email(
            env["PSC_TEST_ACS_EMAIL_TO"], "PSC integration test", "Sent once.", envelope=envelope
        )
        await notifier.ping()
    finally:
        await notifier.close()
    assert first.accepted, first
    assert first.provider_message_id == email_operation_id(envelope.notification_id)
    assert again == first


async def test_a_repeated_sms_is_one_message() -> None:
    env = _required("PSC_TEST_ACS_ENDPOINT", "PSC_TEST_ACS_SMS_FROM", "PSC_TEST_ACS_SMS_TO")
    notifier = _notifier(env)
    envelope = _envelope()
    try:
        first = await notifier.send_sms(
            env["PSC_TEST_ACS_SMS_TO"], "PSC integration test: sent once.", envelope=envelope
        )
        again = await notifier.send_sms(
            env["PSC_TEST_ACS_SMS_TO"], "PSC integration test: sent once.", envelope=envelope
        )
    finally:
        await notifier.close()
    assert first.accepted, first
    assert again.provider_message_id == first.provider_message_id
