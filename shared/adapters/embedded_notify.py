"""The embedded notification channel (`PSC_NOTIFY=embedded`): sends nothing, records every SMS and
e-mail it would have sent in the `outbox` container (partition `/patientId`, the dev outbox reads
one patient's partition), and publishes the delivery report ACS would publish, in Event Grid's
schema, on the `notification-reports` queue, so report handling runs on a laptop as in Azure.

As strict as ACS where the code could tell the difference:

* it refuses what ACS refuses per recipient: a number that is not E.164, an address that is not
  one (`invalid-recipient`), and a channel without a configured sender (`channel-not-configured`);
* repeats behave as ACS's repeatable requests (`shared/kernel/notify.py`): inside the window the
  first answer comes back and nothing new is recorded; after it, an SMS is `outcome-unknown`
  (ACS cannot tell, so neither do we) and an e-mail is looked up by its operation id;
* reports: `Delivered`, except to destinations that can never receive (RFC 2606's `.invalid`
  domains; North America's fictional 555-0100 to 555-0199 numbers), which get `Failed`, so a
  fallback after a non-delivery report can be tried here too.

One document per notification and channel, id `<channel>:<notification id>`, created only if
absent (a concurrent repeat reads the winner's answer). A crash between the record and the report
is mended by the repeat: it publishes the report again under the same message id, which the bus's
duplicate detection drops if the first made it.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from shared.kernel.catalog import NOTIFICATION_REPORTS_QUEUE, OUTBOX
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, NotFound
from shared.kernel.messages import MessageBus, OutgoingMessage
from shared.kernel.notify import (
    NOTIFY_NAMESPACE,
    Envelope,
    SendChannel,
    SendResult,
    check_email_content,
    check_sms_text,
    email_operation_id,
    is_e164,
    is_email_address,
    sms_repeatability_id,
)
from shared.kernel.times import stamp

REPORTS_QUEUE = NOTIFICATION_REPORTS_QUEUE
TOPIC = "/embedded/providers/Microsoft.Communication/communicationServices/psc-embedded"
_FICTIONAL_NANP = re.compile(r"^\+1\d{3}55501\d{2}$")


class EmbeddedNotifier:
    """Implements `shared.kernel.notify.Notifier` on the document store and the bus."""

    def __init__(
        self,
        store: DocumentStore,
        bus: MessageBus,
        clock: Clock,
        *,
        sms_from: str | None,
        email_sender: str | None,
    ) -> None:
        self._outbox = store.container(OUTBOX)
        self._store = store
        self._bus = bus
        self._clock = clock
        self._sms_from = sms_from
        self._email_sender = email_sender

    @property
    def channels(self) -> frozenset[SendChannel]:
        found: set[SendChannel] = set()
        if self._sms_from:
            found.add("sms")
        if self._email_sender:
            found.add("email")
        return frozenset(found)

    async def send_sms(self, to: str, text: str, *, envelope: Envelope) -> SendResult:
        check_sms_text(text)
        if not self._sms_from:
            return SendResult(False, None, "channel-not-configured")
        if not is_e164(to):
            return SendResult(False, None, "invalid-recipient")
        provider_id = f"Outgoing_{sms_repeatability_id(envelope.notification_id).replace('-', '')}"
        return await self._send("sms", to, {"text": text}, envelope, provider_id)

    async def send_email(
        self, to: str, subject: str, text: str, html: str | None = None, *, envelope: Envelope
    ) -> SendResult:
        check_email_content(subject, text)
        if not self._email_sender:
            return SendResult(False, None, "channel-not-configured")
        if not is_email_address(to):
            return SendResult(False, None, "invalid-recipient")
        content = {"subject": subject, "text": text, "html": html}
        return await self._send("email", to, content, envelope, email_operation_id(envelope.notification_id))

    async def _send(
        self, channel: SendChannel, to: str, content: dict[str, Any], envelope: Envelope, provider_id: str
    ) -> SendResult:
        doc_id = f"{channel}:{envelope.notification_id}"
        existing = await self._read(doc_id, envelope.patient_id)
        late = envelope.repeats_too_late(self._clock.now())
        if existing is not None:
            if channel == "sms" and late:
                return SendResult(False, None, "outcome-unknown")
            await self._report(existing)
            return SendResult(True, existing["providerMessageId"])
        if channel == "sms" and late:
            return SendResult(False, None, "outcome-unknown")
        document = {
            "id": doc_id,
            "patientId": envelope.patient_id,
            "notificationId": envelope.notification_id,
            "purpose": envelope.purpose,
            "subjectId": envelope.subject_id,
            "channel": channel,
            "from": self._sms_from if channel == "sms" else self._email_sender,
            "to": to,
            **content,
            "links": dict(envelope.links),
            "createdAt": _stamp(self._clock.now()),
            "firstAttemptAt": _stamp(envelope.first_attempt_at),
            "status": "sent",
            "providerMessageId": provider_id,
        }
        try:
            stored = await self._outbox.create(document)
        except Conflict:  # a concurrent repeat recorded it first: its answer is ours
            stored = await self._outbox.read(doc_id, envelope.patient_id)
        await self._report(stored)
        return SendResult(True, stored["providerMessageId"])

    async def _read(self, doc_id: str, patient_id: str) -> dict[str, Any] | None:
        try:
            return await self._outbox.read(doc_id, patient_id)
        except NotFound:
            return None

    async def _report(self, sent: dict[str, Any]) -> None:
        event = (
            sms_report(sent, self._clock.now())
            if sent["channel"] == "sms"
            else email_report(sent, self._clock.now())
        )
        await self._bus.send(
            REPORTS_QUEUE,
            OutgoingMessage(
                body=json.dumps(event, separators=(",", ":")).encode(),
                message_id=event["id"],
                # What Event Grid sets on a Service Bus delivery (its "message headers").
                application_properties={"aeg-event-type": "Notification", "aeg-delivery-count": 0},
            ),
        )

    async def ping(self) -> None:
        await self._store.ping()

    async def close(self) -> None:
        """The store and bus belong to the runtime, which closes them."""


def delivers(channel: str, to: str) -> bool:
    """Whether the embedded channel reports a message to `to` delivered."""
    if channel == "email":
        return not to.rsplit("@", 1)[-1].lower().rstrip(".").endswith(".invalid")
    return not _FICTIONAL_NANP.match(to)


def sms_report(sent: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`Microsoft.Communication.SMSDeliveryReportReceived` as Event Grid's page shows it."""
    ok = delivers("sms", sent["to"])
    return {
        "id": sent["providerMessageId"],
        "topic": TOPIC,
        "subject": f"/phonenumber/{str(sent['from']).lstrip('+')}",
        "data": {
            "messageId": sent["providerMessageId"],
            "from": sent["from"],
            "to": sent["to"],
            "deliveryStatus": "Delivered" if ok else "Failed",
            "deliveryStatusDetails": "No error." if ok else "Destination cannot receive messages.",
            "receivedTimestamp": _stamp(now),
            "deliveryAttempts": [
                {"timestamp": _stamp(now), "segmentsSucceeded": int(ok), "segmentsFailed": int(not ok)}
            ],
            "tag": f"{sent['patientId']}|{sent['notificationId']}",
        },
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": _stamp(now),
    }


def email_report(sent: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`Microsoft.Communication.EmailDeliveryReportReceived` as Event Grid's page shows it."""
    operation_id = sent["providerMessageId"]
    return {
        "id": str(uuid.uuid5(NOTIFY_NAMESPACE, f"email-report:{operation_id}")),
        "topic": TOPIC,
        "subject": f"sender/{sent['from']}/message/{operation_id}",
        "data": {
            "sender": sent["from"],
            "recipient": sent["to"],
            "messageId": operation_id,
            "status": "Delivered" if delivers("email", sent["to"]) else "Failed",
            "deliveryAttemptTimeStamp": _stamp(now),
        },
        "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": _stamp(now),
    }


def _stamp(moment: datetime) -> str:
    return stamp(moment)
