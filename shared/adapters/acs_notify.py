"""SMS and e-mail through Azure Communication Services (`PSC_NOTIFY=acs`), keyless.

Settings: `ACS__endpoint` (the resource's endpoint; the app's managed identity authenticates, with
the role Communication and Email Service Owner on the resource), `ACS_SMS_FROM`, `ACS_EMAIL_SENDER`.
A loopback endpoint outside Azure is the ACS stand-in (`devhost/acs_standin.py`): it gets the
stand-in's published key, because azure-core never sends a bearer token over plain HTTP.

The SDKs (`azure-communication-sms`, `azure-communication-email`) are imported when the first
message is sent. Repeatability (see `shared/kernel/notify.py` for the whole story):

* SMS: `SmsClient.send` puts a fresh random `repeatabilityRequestId` and the current time into each
  recipient, so a retry of ours would be a new message to ACS. The adapter builds the same
  `SendMessageRequest` with the ids derived from the notification and posts it through the
  client's generated operation (`_sms_service_client.sms.send`, the call `send` itself makes):
  private to the SDK, pinned below 2.0 in requirements.in, and held by the stand-in tests, which
  run the real SDK and read what reaches the wire.
* E-mail: `begin_send(operation_id=...)` is public; the repeatability headers go in `headers=`, and
  `polling=False` returns at ACS's 202 instead of holding the invocation until delivery. The
  delivery report comes through Event Grid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.kernel.clock import Clock
from shared.kernel.errors import AccessDenied, ConfigError, Unavailable
from shared.kernel.notify import (
    Envelope,
    FailureReason,
    SendChannel,
    SendResult,
    check_email_content,
    check_sms_text,
    email_operation_id,
    is_e164,
    is_email_address,
    sms_repeatability_id,
)

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger("psc.notify")

# The stand-in's key: public, like the storage emulator's; accepted only for a loopback endpoint
# outside Azure (base64, as the HMAC policy decodes it).
ACS_STANDIN_KEY = "cHNjLWFjcy1zdGFuZC1pbi1ub3QtYS1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg=="
EMAIL_API_VERSION = "2025-09-01"
# Bounded SDK retries (they repeat the same request body and headers, so ACS deduplicates them);
# past these the invocation fails and the queue's redelivery repeats the send with the same ids.
CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 3, "retry_backoff_max": 8}
_STILL_SENT = frozenset({"NotStarted", "Running", "Succeeded"})


class AcsNotifier:
    """Implements `shared.kernel.notify.Notifier` on ACS SMS and Email."""

    def __init__(
        self,
        endpoint: str,
        credential: Callable[[], Any],
        clock: Clock,
        *,
        sms_from: str | None,
        email_sender: str | None,
        sms_client: Any = None,
        email_client: Any = None,
    ) -> None:
        """`credential`: called once, on first use; returns an async token credential (or the
        stand-in's key credential) the notifier then owns. `sms_client`/`email_client`: ready
        clients (tests pass fakes of the SDK's); built from the endpoint otherwise."""
        self._endpoint = endpoint
        self._credential_factory = credential
        self._credential: Any = None
        self._clock = clock
        self._sms_from = sms_from
        self._email_sender = email_sender
        self._sms_client = sms_client
        self._email_client = email_client
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> AcsNotifier:
        from shared.adapters.azure_credentials import azure_credential, is_local_endpoint
        from shared.config import running_in_azure

        endpoint = settings.acs_endpoint
        if not endpoint:
            raise ConfigError("ACS__endpoint: required with PSC_NOTIFY=acs")
        senders = {"sms_from": settings.acs_sms_from, "email_sender": settings.acs_email_sender}
        if is_local_endpoint(endpoint) and not running_in_azure():
            return cls(endpoint, _standin_key, clock, **senders)
        if not endpoint.lower().startswith("https://"):
            raise ConfigError("ACS__endpoint: must be https:// (only the local stand-in may use http)")
        return cls(endpoint, lambda: azure_credential(settings), clock, **senders)

    @property
    def channels(self) -> frozenset[SendChannel]:
        found: set[SendChannel] = set()
        if self._sms_from:
            found.add("sms")
        if self._email_sender:
            found.add("email")
        return frozenset(found)

    async def _clients(self) -> tuple[Any, Any]:
        async with self._lock:
            if self._sms_client is None or self._email_client is None:
                from azure.communication.email.aio import EmailClient
                from azure.communication.sms.aio import SmsClient

                if self._credential is None:
                    self._credential = self._credential_factory()
                if self._sms_client is None:
                    self._sms_client = SmsClient(self._endpoint, self._credential, **CLIENT_OPTIONS)
                if self._email_client is None:
                    self._email_client = EmailClient(
                        self._endpoint, self._credential, api_version=EMAIL_API_VERSION, **CLIENT_OPTIONS
                    )
            return self._sms_client, self._email_client

    async def send_sms(self, to: str, text: str, *, envelope: Envelope) -> SendResult:
        check_sms_text(text)
        if not self._sms_from:
            return SendResult(False, None, "channel-not-configured")
        if not is_e164(to):
            return SendResult(False, None, "invalid-recipient")
        if envelope.repeats_too_late(self._clock.now()):
            # ACS no longer recognises the repeat and has no lookup by our id: sending could make
            # it twice. The delivery report (it carries our tag) tells whether the first went out.
            log.warning(
                "sms not repeated outside the repeatability window", extra={"reason": "outcome-unknown"}
            )
            return SendResult(False, None, "outcome-unknown")
        from azure.communication.sms._generated.models import SendMessageRequest, SmsRecipient, SmsSendOptions

        request = SendMessageRequest(
            from_property=self._sms_from,
            sms_recipients=[
                SmsRecipient(
                    to=to,
                    repeatability_request_id=sms_repeatability_id(envelope.notification_id),
                    repeatability_first_sent=envelope.first_sent_header,
                )
            ],
            message=text,
            sms_send_options=SmsSendOptions(enable_delivery_report=True, tag=envelope.tag),
        )
        sms, _ = await self._clients()
        try:
            response = await sms._sms_service_client.sms.send(request)
        except AzureError as exc:
            return _refused(exc, "sms")
        item = response.value[0]
        if item.successful:
            log.info("sms accepted", extra={"message_id": item.message_id, "status": item.http_status_code})
            return SendResult(True, item.message_id)
        reason = sms_failure(item.http_status_code, item.error_message)
        log.warning("sms refused", extra={"status": item.http_status_code, "reason": reason})
        return SendResult(False, item.message_id, reason)

    async def send_email(
        self, to: str, subject: str, text: str, html: str | None = None, *, envelope: Envelope
    ) -> SendResult:
        check_email_content(subject, text)
        if not self._email_sender:
            return SendResult(False, None, "channel-not-configured")
        if not is_email_address(to):
            return SendResult(False, None, "invalid-recipient")
        operation_id = email_operation_id(envelope.notification_id)
        first_sent = envelope.first_sent_header
        if envelope.repeats_too_late(self._clock.now()):
            known = await self._operation(operation_id)
            if known is not None:
                return known
            # Never reached ACS: a new first attempt as far as ACS's repeatability goes.
            from email.utils import format_datetime

            first_sent = format_datetime(self._clock.now(), usegmt=True)
        content: dict[str, str] = {"subject": subject, "plainText": text}
        if html is not None:
            content["html"] = html
        message = {
            "senderAddress": self._email_sender,
            "recipients": {"to": [{"address": to}]},
            "content": content,
            "userEngagementTrackingDisabled": True,
        }
        _, email = await self._clients()
        try:
            poller = await email.begin_send(
                message,
                operation_id=operation_id,
                headers={"Repeatability-Request-Id": operation_id, "Repeatability-First-Sent": first_sent},
                polling=False,
            )
            accepted = await poller.result()
        except HttpResponseError as exc:
            if exc.status_code == 412:  # our window estimate and ACS's clock disagree: ask ACS
                known = await self._operation(operation_id)
                if known is not None:
                    return known
            return _refused(exc, "email")
        except AzureError as exc:
            return _refused(exc, "email")
        provider_id = (accepted or {}).get("id") or operation_id
        log.info("email accepted", extra={"message_id": provider_id})
        return SendResult(True, provider_id)

    async def _operation(self, operation_id: str) -> SendResult | None:
        """What ACS knows of an e-mail operation: sent (or sending), failed, or never seen (None)."""
        from azure.core.rest import HttpRequest

        _, email = await self._clients()
        request = HttpRequest(
            "GET", f"/emails/operations/{operation_id}", params={"api-version": EMAIL_API_VERSION}
        )
        try:
            response = await email.send_request(request)
        except AzureError as exc:
            raise Unavailable("Azure Communication Services cannot be reached.") from exc
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise AccessDenied(
                "Azure Communication Services refused the app's identity.",
                right="Communication and Email Service Owner",
                resource="communication service",
            )
        if response.status_code != 200:
            raise Unavailable("Azure Communication Services could not say what became of an e-mail.")
        status = response.json().get("status")
        if status in _STILL_SENT:
            return SendResult(True, operation_id)
        log.warning("email operation did not succeed", extra={"status": status, "reason": "rejected"})
        return SendResult(False, operation_id, "rejected")

    async def ping(self) -> None:
        """One status read of an operation that cannot exist: 404 means reachable and authorised."""
        await self._operation("00000000-0000-0000-0000-000000000000")

    async def close(self) -> None:
        from shared.adapters.azure_credentials import close_quietly

        for resource in (self._sms_client, self._email_client, self._credential):
            if resource is not None:
                await close_quietly(resource)
        self._sms_client = self._email_client = self._credential = None


def _standin_key() -> Any:
    from azure.core.credentials import AzureKeyCredential

    return AzureKeyCredential(ACS_STANDIN_KEY)


def sms_failure(status: int, message: str | None) -> FailureReason:
    """A per-recipient refusal as a code (ACS's message may quote the number: never kept). What
    may pass on a retry raises `Unavailable` instead, so the queue's redelivery repeats it."""
    if status in (408, 409, 429) or status >= 500:
        raise Unavailable("Azure Communication Services could not take the SMS now.")
    words = (message or "").lower()
    if "opt" in words and "out" in words:
        return "opted-out"
    if status == 412:
        return "outcome-unknown"
    if status in (400, 404, 422):
        return "invalid-recipient"
    if status in (401, 403):
        return "blocked"
    return "rejected"


def _refused(exc: AzureError, channel: str) -> SendResult:
    """A refusal of the whole request: a code for what no retry changes, an exception otherwise."""
    if isinstance(exc, ClientAuthenticationError) or (
        isinstance(exc, HttpResponseError) and exc.status_code in (401, 403)
    ):
        raise AccessDenied(
            "Azure Communication Services refused the app's identity.",
            right="Communication and Email Service Owner",
            resource="communication service",
        ) from exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError) or not isinstance(exc, HttpResponseError):
        raise Unavailable("Azure Communication Services cannot be reached.") from exc
    status = exc.status_code or 0
    if status in (408, 409, 412, 429) or status >= 500:
        # 409: the first request is still in progress; 412: outside the repeatability window.
        raise Unavailable("Azure Communication Services could not take the message now.") from exc
    log.warning(f"{channel} request refused", extra={"status": status, "reason": "rejected"})
    return SendResult(False, None, "rejected")
