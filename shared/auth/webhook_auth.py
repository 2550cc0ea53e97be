"""Standard Webhooks signatures (https://www.standardwebhooks.com/) for bot escalations.

A signed delivery carries `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
(`v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{raw body}")>`, several separated by spaces while
a sender rotates keys). The key is PSC_WEBHOOK_SECRET, `whsec_<base64 key>`.

Why not `Webhook.verify` of the reference library: it compares the timestamp with the system
clock (`datetime.now()`), while every time rule here asks the runtime's Clock (tests drive a
ManualClock, and all instances share one notion of "now"). So the window is checked here against
the clock, and the signature is computed by the library's own `Webhook.sign` (same canonical
string, same HMAC, same secret decoding) and compared in constant time. Parsing the signature
header here also keeps a malformed header a 401: the library's verify raises ValueError on an
entry without a comma or with bad base64.

Every failure is the same 401 for the caller (nothing that tells an attacker which part was
wrong); the reason goes to the log as a fixed code.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from shared.kernel.errors import ConfigError, Unauthorized

if TYPE_CHECKING:
    from standardwebhooks.webhooks import Webhook

TOLERANCE = timedelta(minutes=5)
MAX_WEBHOOK_ID = 256
MAX_SIGNATURES = 10
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
UNAUTHORIZED_DETAIL = "Valid authentication is required."


@dataclass(frozen=True)
class WebhookDelivery:
    """A delivery whose signature checked out: `id` is the sender's idempotency key."""

    id: str
    timestamp: datetime


class WebhookRejected(Unauthorized):
    """401 for the caller; `reason` (a fixed code) only for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(UNAUTHORIZED_DETAIL)
        self.reason = reason


@cache
def _webhook(secret: str) -> Webhook:
    from standardwebhooks.webhooks import Webhook  # loaded with the first signed delivery

    try:
        return Webhook(secret)
    except Exception as exc:  # binascii.Error, EmptyWebhookSecretError, ...
        raise ConfigError(
            f"PSC_WEBHOOK_SECRET is not a valid whsec_<base64> secret ({type(exc).__name__})"
        ) from None


def _signatures(header: str) -> list[bytes]:
    found: list[bytes] = []
    for entry in header.split(" ")[:MAX_SIGNATURES]:
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue  # other versions (e.g. v1a asymmetric) and junk are ignored, as the spec says
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_webhook(
    secret: str | None, body: bytes, headers: Mapping[str, str], now: datetime
) -> WebhookDelivery:
    """Check a Standard Webhooks delivery against `now` (the runtime clock). Raises
    `WebhookRejected` (401) for any bad, missing, stale or future signature, and ConfigError when
    the secret setting is malformed."""
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() in HEADERS}
    msg_id = (lowered.get("webhook-id") or "").strip()
    stamp = (lowered.get("webhook-timestamp") or "").strip()
    signature = (lowered.get("webhook-signature") or "").strip()
    if not (msg_id and stamp and signature):
        raise WebhookRejected("missing-headers")
    if not secret:
        raise WebhookRejected("secret-not-configured")
    if len(msg_id) > MAX_WEBHOOK_ID or not msg_id.isprintable():
        raise WebhookRejected("bad-webhook-id")
    if not _TIMESTAMP.match(stamp):
        raise WebhookRejected("bad-timestamp")
    # The window is compared in integers first: a datetime is built only from a timestamp inside
    # it (12 digits reach year 33,658, which datetime cannot hold: that was an unauthenticated 500).
    # Inclusive bounds, as the reference library: exactly five minutes off is still accepted.
    seconds, tolerance = int(stamp), TOLERANCE.total_seconds()
    if seconds < now.timestamp() - tolerance:
        raise WebhookRejected("timestamp-too-old")
    if seconds > now.timestamp() + tolerance:
        raise WebhookRejected("timestamp-too-new")
    timestamp = datetime.fromtimestamp(seconds, tz=UTC)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("body-not-utf8") from None
    webhook = _webhook(secret)
    expected = base64.b64decode(webhook.sign(msg_id, timestamp, text).partition(",")[2])
    if not any(hmac.compare_digest(expected, given) for given in _signatures(signature)):
        raise WebhookRejected("bad-signature")
    return WebhookDelivery(id=msg_id, timestamp=timestamp)


def sign_webhook(secret: str, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three headers a sender adds (for tests, tools and the README's example); signed by the
    reference library."""
    from standardwebhooks.webhooks import Webhook

    signature = Webhook(secret).sign(msg_id, timestamp, body.decode("utf-8"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }
