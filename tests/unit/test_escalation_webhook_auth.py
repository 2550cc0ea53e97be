"""Standard Webhooks verification against the runtime clock, signed by the reference library."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from shared.auth.webhook_auth import WebhookRejected, sign_webhook, verify_webhook
from shared.kernel.errors import ConfigError

SECRET = "whsec_" + base64.b64encode(b"unit-test-key-0123456789abcdefgh").decode()
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BODY = b'{"botConversationId": "b-1", "note": "za\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87"}'


def headers(
    *, msg_id: str = "msg-1", at: datetime = NOW, body: bytes = BODY, secret: str = SECRET
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def reason(body: bytes, given: dict[str, str], now: datetime = NOW, secret: str | None = SECRET) -> str:
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(secret, body, given, now)
    assert caught.value.status == 401
    assert caught.value.detail == "Valid authentication is required."  # the same for every reason
    return caught.value.reason


def test_a_delivery_signed_by_the_reference_library_verifies() -> None:
    delivery = verify_webhook(SECRET, BODY, headers(), NOW)
    assert delivery.id == "msg-1"
    assert delivery.timestamp == NOW


def test_the_reference_library_verifies_what_our_helper_signs() -> None:
    now = datetime.now(UTC)  # the library's verify only knows the system clock
    signed = sign_webhook(SECRET, "msg-2", now, BODY)
    assert Webhook(SECRET).verify(BODY, signed) == {"botConversationId": "b-1", "note": "zażółć"}
    assert verify_webhook(SECRET, BODY, signed, now).id == "msg-2"


def test_why_we_do_not_call_the_librarys_verify_it_ignores_the_runtime_clock() -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    then = datetime(2000, 1, 1, tzinfo=UTC)  # a manual clock's "now", far from the system's
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(BODY, headers(at=then))
    assert verify_webhook(SECRET, BODY, headers(at=then), then).id == "msg-1"


def test_header_names_are_case_insensitive() -> None:
    given = {k.upper(): v for k, v in headers().items()}
    assert verify_webhook(SECRET, BODY, given, NOW).id == "msg-1"


def test_any_of_several_signatures_may_match_during_key_rotation() -> None:
    given = headers()
    old = Webhook("whsec_" + base64.b64encode(b"old-key-0123456789abcdefghijklmn").decode())
    given["webhook-signature"] = (
        f"v1,{base64.b64encode(b'x' * 32).decode()} junk v2,abc " + given["webhook-signature"]
    )
    given["webhook-signature"] += " " + old.sign("msg-1", NOW, BODY.decode())
    assert verify_webhook(SECRET, BODY, given, NOW).id == "msg-1"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"webhook-id": ""}, "missing-headers"),
        ({"webhook-signature": ""}, "missing-headers"),
        ({"webhook-timestamp": "soon"}, "bad-timestamp"),
        ({"webhook-timestamp": "1.767e9"}, "bad-timestamp"),
        ({"webhook-timestamp": "-5"}, "bad-timestamp"),
        ({"webhook-signature": "v1,not base64!"}, "bad-signature"),
        ({"webhook-signature": "v1"}, "bad-signature"),
        ({"webhook-signature": "garbage"}, "bad-signature"),
        ({"webhook-id": "x" * 300}, "bad-webhook-id"),
        # Beyond what datetime holds (year 33,658): compared as integers, never converted.
        ({"webhook-timestamp": "9" * 12}, "timestamp-too-new"),
        ({"webhook-timestamp": "0"}, "timestamp-too-old"),
        ({"webhook-timestamp": "9" * 13}, "bad-timestamp"),
        ({"webhook-timestamp": "\u0661\u0667\u0666\u0667"}, "bad-timestamp"),  # Arabic-Indic digits
    ],
)
def test_malformed_headers_are_rejected_not_crashing(change: dict[str, str], expected: str) -> None:
    assert reason(BODY, {**headers(), **change}) == expected


def test_a_changed_body_or_id_fails_the_signature() -> None:
    assert reason(BODY + b" ", headers()) == "bad-signature"
    assert reason(BODY, {**headers(), "webhook-id": "msg-other"}) == "bad-signature"


def test_the_window_is_five_minutes_either_way_against_the_given_clock() -> None:
    five = timedelta(minutes=5)
    assert verify_webhook(SECRET, BODY, headers(at=NOW - five), NOW)
    assert verify_webhook(SECRET, BODY, headers(at=NOW + five), NOW)
    second = timedelta(seconds=1)
    assert reason(BODY, headers(at=NOW - five - second)) == "timestamp-too-old"
    assert reason(BODY, headers(at=NOW + five + second)) == "timestamp-too-new"


def test_a_missing_secret_rejects_and_a_malformed_one_is_a_config_error() -> None:
    assert reason(BODY, headers(), secret=None) == "secret-not-configured"
    with pytest.raises(ConfigError, match="PSC_WEBHOOK_SECRET"):
        verify_webhook("whsec_", BODY, headers(), NOW)


def test_a_body_that_is_not_utf8_is_rejected() -> None:
    assert reason(b"\xff\xfe", headers()) == "body-not-utf8"
