"""Delivery reports and inbound SMS, as they arrive on the `notification-reports` queue.

ACS publishes `Microsoft.Communication.SMSDeliveryReportReceived`, `SMSReceived` and
`EmailDeliveryReportReceived` to its Event Grid system topic; our subscription delivers each event
to a Service Bus queue as one message whose body is the event in the Event Grid schema (a single
JSON object; `MessageId` is the event's id, so queue duplicate detection drops Event Grid's
redeliveries). CloudEvents 1.0 bodies and a one-event array are read too, in case a subscription
is set up that way. Schemas: Event Grid's "Azure Communication Services - SMS events" and
"- Email events" pages (`Tag` arrives capitalised in the documented SMS sample, so keys are read
case-insensitively).

`parse_report` never raises on content: what it cannot use becomes `Ignored` with a code, so a
consumer completes it instead of dead-lettering Event Grid's other event types. Nothing here logs:
reports carry phone numbers and e-mail addresses, inbound SMS the patient's words.

Keywords (`keyword`): the whole message, case- and accent-insensitive, surrounding punctuation
ignored, is compared with the carriers' lists (CTIA's and the US carriers' opt-out words as
Twilio, Telnyx and AWS implement them): STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END, QUIT,
OPTOUT/OPT-OUT/OPT OUT, REVOKE, and the Spanish BAJA; START, UNSTOP, YES; HELP, INFO and the
Spanish and Polish AYUDA, POMOC. CANCEL means opt-out because carriers block further messages on
it whatever we do; our reminder texts say to cancel an appointment through its link.
`keyword_language` names the language a keyword is a word of (AYUDA, BAJA: es; POMOC: pl), so a
reply to a number no patient has can still come in the sender's language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.kernel.json_reader import read_json

Keyword = Literal["STOP", "START", "HELP"]
Outcome = Literal["delivered", "failed"]

SMS_DELIVERY = "Microsoft.Communication.SMSDeliveryReportReceived"
SMS_RECEIVED = "Microsoft.Communication.SMSReceived"
EMAIL_DELIVERY = "Microsoft.Communication.EmailDeliveryReportReceived"
EVENT_TYPES = (SMS_DELIVERY, SMS_RECEIVED, EMAIL_DELIVERY)
# Event Grid delivers events of up to 1 MB; ACS's are a few levels deep.
MAX_EVENT_BYTES = 1024 * 1024
MAX_EVENT_DEPTH = 16

KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        (
            "STOP",
            "STOPALL",
            "STOP ALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "OPTOUT",
            "OPT-OUT",
            "OPT OUT",
            "REVOKE",
            "BAJA",
        ),
        "STOP",
    ),
    **dict.fromkeys(("START", "UNSTOP", "YES"), "START"),
    **dict.fromkeys(("HELP", "INFO", "AYUDA", "POMOC"), "HELP"),
}
# Keywords that are words of one language (the others are English or shared by carriers).
_KEYWORD_LANGUAGES = {"AYUDA": "es", "BAJA": "es", "POMOC": "pl"}
# Email statuses (Event Grid's page lists Delivered, Expanded, Failed; the service also reports
# these): Expanded means a distribution list took it, which is as far as we can follow it.
_EMAIL_OUTCOMES: dict[str, tuple[Outcome, str | None]] = {
    "delivered": ("delivered", None),
    "expanded": ("delivered", None),
    "failed": ("failed", "failed"),
    "bounced": ("failed", "bounced"),
    "suppressed": ("failed", "suppressed"),
    "filteredspam": ("failed", "filtered-spam"),
    "quarantined": ("failed", "quarantined"),
}
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class DeliveryReport:
    """`provider_message_id`: ACS's id of the sent message (SMS: the id `send` returned; e-mail:
    the operation id, which we choose: `shared.kernel.notify.email_operation_id`). `tag`: what the
    SMS was sent with (`Envelope.tag`); e-mail reports carry none. `reason`: a code, never the
    carrier's words."""

    event_id: str
    channel: Literal["sms", "email"]
    outcome: Outcome
    provider_message_id: str
    tag: str | None
    reason: str | None
    at: datetime | None


@dataclass(frozen=True)
class InboundSms:
    """An SMS a patient sent to our number. `sender` and `text` are PHI: never log them."""

    event_id: str
    sender: str = field(repr=False)
    recipient: str = field(repr=False)
    keyword: Keyword | None
    text: str = field(repr=False)
    at: datetime | None


@dataclass(frozen=True)
class Ignored:
    event_id: str | None
    event_type: str | None
    reason: Literal["not-json", "not-an-event", "other-event-type", "missing-field", "unknown-status"]


Report = DeliveryReport | InboundSms | Ignored


def _fold(text: str) -> str:
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).upper()
    return _SPACES.sub(" ", _EDGES.sub("", folded.strip()))


def keyword(text: str) -> Keyword | None:
    """The opt-out / opt-in / help command `text` is, or None for anything else."""
    return KEYWORDS.get(_fold(text))


def keyword_language(text: str) -> str | None:
    """The language `text`'s keyword is a word of (`AYUDA` -> es), or None (English, or a word
    carriers share across languages)."""
    return _KEYWORD_LANGUAGES.get(_fold(text))


def e164(number: str) -> str:
    """ACS writes SMS numbers with or without the leading `+` (`15555555555`); we store E.164."""
    digits = number.strip()
    return digits if digits.startswith("+") else f"+{digits}"


def parse_report(body: bytes | str) -> Report:
    """One queue message's body as a report, an inbound SMS, or `Ignored`."""
    try:
        # Bounded (size and depth) like every JSON from outside; an inbound SMS is the patient's
        # own words, so it is not held to our text rules here.
        loaded = read_json(body, max_bytes=MAX_EVENT_BYTES, max_depth=MAX_EVENT_DEPTH, check_text=False)
    except ValueError:
        return Ignored(None, None, "not-json")
    if isinstance(loaded, list) and len(loaded) == 1:
        loaded = loaded[0]
    if not isinstance(loaded, dict):
        return Ignored(None, None, "not-an-event")
    event = _envelope(loaded)
    if event is None:
        return Ignored(_str(loaded.get("id")), None, "not-an-event")
    event_id, event_type, data, at = event
    if event_type not in EVENT_TYPES:
        return Ignored(event_id, event_type, "other-event-type")
    if event_type == SMS_RECEIVED:
        return _inbound(event_id, data, at)
    if event_type == SMS_DELIVERY:
        return _sms_report(event_id, data, at)
    return _email_report(event_id, data, at)


def _envelope(event: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any], datetime | None] | None:
    if "eventType" in event:  # Event Grid schema
        event_type, time = event.get("eventType"), event.get("eventTime")
    elif "specversion" in event:  # CloudEvents 1.0
        event_type, time = event.get("type"), event.get("time")
    else:
        return None
    event_id, data = _str(event.get("id")), event.get("data")
    if not event_id or not isinstance(event_type, str) or not isinstance(data, Mapping):
        return None
    return event_id, event_type, _folded(data), _time(time)


def _inbound(event_id: str, data: Mapping[str, Any], at: datetime | None) -> Report:
    sender, recipient, text = _str(data.get("from")), _str(data.get("to")), data.get("message")
    if not sender or not recipient or not isinstance(text, str):
        return Ignored(event_id, SMS_RECEIVED, "missing-field")
    return InboundSms(
        event_id,
        sender=e164(sender),
        recipient=e164(recipient),
        keyword=keyword(text),
        text=text,
        at=_time(data.get("receivedtimestamp")) or at,
    )


def _sms_report(event_id: str, data: Mapping[str, Any], at: datetime | None) -> Report:
    message_id, status = _str(data.get("messageid")), _str(data.get("deliverystatus"))
    if not message_id or not status:
        return Ignored(event_id, SMS_DELIVERY, "missing-field")
    if status.lower() == "delivered":
        outcome: Outcome = "delivered"
        reason = None
    elif status.lower() == "failed":
        outcome, reason = "failed", "not-delivered"
    else:
        return Ignored(event_id, SMS_DELIVERY, "unknown-status")
    return DeliveryReport(
        event_id,
        "sms",
        outcome,
        message_id,
        tag=_str(data.get("tag")),
        reason=reason,
        at=_time(data.get("receivedtimestamp")) or at,
    )


def _email_report(event_id: str, data: Mapping[str, Any], at: datetime | None) -> Report:
    message_id, status = _str(data.get("messageid")), _str(data.get("status"))
    if not message_id or not status:
        return Ignored(event_id, EMAIL_DELIVERY, "missing-field")
    known = _EMAIL_OUTCOMES.get(status.lower())
    if known is None:
        return Ignored(event_id, EMAIL_DELIVERY, "unknown-status")
    outcome, reason = known
    return DeliveryReport(
        event_id,
        "email",
        outcome,
        message_id,
        tag=None,
        reason=reason,
        at=_time(data.get("deliveryattempttimestamp")) or at,
    )


def _folded(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in data.items()}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    """Event Grid's times have up to 7 fractional digits; Python takes 6."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
