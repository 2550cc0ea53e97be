"""Notifier port: SMS and e-mail to one recipient, through Azure Communication Services in Azure
(`shared/adapters/acs_notify.py`) or the embedded outbox on a laptop
(`shared/adapters/embedded_notify.py`), chosen by `PSC_NOTIFY`.

**Never twice.** Every send carries an `Envelope` whose `notification_id` is deterministic (purpose
+ subject + occasion, chosen by the caller) and whose `first_attempt_at` is when the caller first
handed this notification to this channel (recorded with its intent, the same on every retry). From
them come the ids ACS deduplicates by:

* SMS: each recipient's `repeatabilityRequestId` = UUID5(`sms:<notification id>`) and
  `repeatabilityFirstSent` = `first_attempt_at` (the SMS API's repeatable-request fields, per
  recipient in the body; the Python SDK fills them with a random UUID and *now* on every call, so
  the adapter builds the request itself);
* e-mail: `Operation-Id` = UUID5(`email:<notification id>`), which is also the id the delivery
  report carries, and the headers `Repeatability-Request-Id` (the same UUID) and
  `Repeatability-First-Sent`.

ACS answers a repeat inside its tracking window (5 minutes, "Repeatable requests" in the ACS REST
reference) with the first answer instead of sending again. A retry after the window cannot be
deduplicated by ACS: for e-mail the adapter asks ACS for the operation by its id (found: it was
sent; not found: it never reached ACS and is sent now); for SMS there is no such lookup, so the
adapter does not send and answers `outcome-unknown` (never twice, at the price of at most once in
that case; the delivery report, which carries our tag, settles it later). We repeat with the
original first-sent time only up to `SAFE_REPEAT` (4 minutes), a minute short of ACS's window, for
clock skew. The embedded channel behaves the same way, so crash tests on a laptop meet the same
window.

**Failures.** A recipient ACS refuses (`failure_reason`: a code, never ACS's words) is a result,
not an exception: the caller falls back to another channel. What may succeed on a retry (network,
429, 5xx, a repeat still in flight) raises `Unavailable`; a missing role raises `AccessDenied`.
Nothing here logs a phone number, an address or a text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Literal, Protocol, runtime_checkable

# What a notification is for (the `purpose` of an envelope, an outbox item, a notification event).
Purpose = Literal["reminder", "confirmation", "survey"]


SendChannel = Literal["sms", "email"]
FailureReason = Literal[
    "invalid-recipient",  # the number or address is malformed or cannot be used
    "opted-out",  # the recipient opted out of this sender at ACS or the carrier
    "blocked",  # ACS refused the destination (country, spam protection, sender not allowed)
    "rejected",  # any other refusal of this message, or an e-mail operation that failed
    "outcome-unknown",  # a retry outside ACS's repeatability window: not sent again
    "channel-not-configured",  # no sender (number or address) is configured for the channel
]

# A fixed namespace: the same notification id gives the same UUIDs in every process and release.
NOTIFY_NAMESPACE = uuid.UUID("6f1d9c52-8e0b-5c3a-9d47-2b1e0a7f4c18")
REPEATABILITY_WINDOW = timedelta(minutes=5)
SAFE_REPEAT = timedelta(minutes=4)
MAX_SMS_TEXT = 2048  # the SMS API's limit on `message` (the SDK's model validates it)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class SendResult:
    accepted: bool
    provider_message_id: str | None = None
    failure_reason: FailureReason | None = None


@dataclass(frozen=True)
class Envelope:
    """Ids of one notification on one channel (no PHI). `subject_id`: the appointment or the
    conversation it is about; `links`: name -> URL as the text carries them (the embedded channel
    records them for the dev outbox)."""

    notification_id: str
    patient_id: str
    purpose: Purpose
    subject_id: str
    first_attempt_at: datetime
    links: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.first_attempt_at.tzinfo is None:
            raise ValueError("first_attempt_at must be an aware datetime")
        if "|" in self.patient_id or not self.notification_id or not self.patient_id:
            raise ValueError("notification and patient ids are required and hold no '|'")

    @property
    def tag(self) -> str:
        """What an SMS carries back in its delivery report: `<patient id>|<notification id>`, enough
        for a point read of the notification in a container partitioned by patient."""
        return f"{self.patient_id}|{self.notification_id}"

    def repeats_too_late(self, now: datetime) -> bool:
        """Whether a send now is outside the window in which ACS deduplicates a repeat."""
        return now - self.first_attempt_at > SAFE_REPEAT

    @property
    def first_sent_header(self) -> str:
        """`first_attempt_at` as HTTP's IMF-fixdate, the form the repeatability fields take."""
        return format_datetime(self.first_attempt_at.astimezone(UTC), usegmt=True)


def split_tag(tag: str | None) -> tuple[str, str] | None:
    """(patient id, notification id) from an SMS delivery report's tag, or None."""
    if not tag or "|" not in tag:
        return None
    patient_id, _, notification_id = tag.partition("|")
    return (patient_id, notification_id) if patient_id and notification_id else None


def sms_repeatability_id(notification_id: str) -> str:
    return str(uuid.uuid5(NOTIFY_NAMESPACE, f"sms:{notification_id}"))


def email_operation_id(notification_id: str) -> str:
    """The e-mail's ACS operation id: also its `messageId` in `EmailDeliveryReportReceived`."""
    return str(uuid.uuid5(NOTIFY_NAMESPACE, f"email:{notification_id}"))


def is_e164(number: str) -> bool:
    return bool(_E164.match(number))


def is_email_address(address: str) -> bool:
    return bool(_EMAIL.match(address))


def check_sms_text(text: str) -> None:
    """What the SMS API (and the SDK's model) refuses before anything is sent: a programming error."""
    if not text or len(text) > MAX_SMS_TEXT:
        raise ValueError(f"an SMS text has 1 to {MAX_SMS_TEXT} characters")


def check_email_content(subject: str, text: str) -> None:
    if not subject.strip() or not text.strip():
        raise ValueError("an e-mail needs a subject and a text")


@runtime_checkable
class Notifier(Protocol):
    @property
    def channels(self) -> frozenset[SendChannel]:
        """The channels a sender is configured for (`ACS_SMS_FROM`, `ACS_EMAIL_SENDER`)."""
        ...

    async def send_sms(self, to: str, text: str, *, envelope: Envelope) -> SendResult:
        """Send one SMS to an E.164 number with a delivery report whose tag is `envelope.tag`."""
        ...

    async def send_email(
        self, to: str, subject: str, text: str, html: str | None = None, *, envelope: Envelope
    ) -> SendResult:
        """Send one e-mail (plain text, and HTML when given) with engagement tracking off, so
        links reach the patient as we wrote them and no pixel reports who opened what."""
        ...

    async def ping(self) -> None:
        """Raise `Unavailable` (or `AccessDenied`) if the channel cannot be used."""
        ...

    async def close(self) -> None: ...
