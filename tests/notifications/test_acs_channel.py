"""The ACS channel: exactly what reaches ACS (fakes of the SDK clients, then the real SDKs against
the recording stand-in on loopback), how ACS's answers become results, and that a notification is
never sent twice: a repeat inside ACS's window carries the same repeatability ids, and after it an
SMS is not sent and an e-mail is looked up first."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.communication.sms._generated.models import SmsSendResponse, SmsSendResponseItem
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

from devhost.acs_standin import AcsStandIn
from shared.adapters.acs_notify import ACS_STANDIN_KEY, AcsNotifier, _standin_key
from shared.config import Settings
from shared.kernel.clock import ManualClock
from shared.kernel.errors import AccessDenied, ConfigError, Unavailable
from shared.kernel.notify import Envelope, SendResult, email_operation_id, sms_repeatability_id

SMS_FROM = "+18005550100"
SENDER = "DoNotReply@psc.example.org"
PHONE = "+48601000001"
ADDRESS = "anna.kowalska@example.org"
TEXT = "Przypomnienie o wizycie: Dr Nowak, wt., 14 kwi, 10:30"


def envelope(
    clock: ManualClock, notification_id: str = "reminder:a-1:24h", ago: timedelta = timedelta(0)
) -> Envelope:
    return Envelope(notification_id, "p-1", "reminder", "a-1", clock.now() - ago)


# --- fakes of the SDK clients: what the adapter hands them -----------------------------------


class FakeSmsOperations:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    async def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests.append(request.serialize())
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class FakeSmsClient:
    """The shape of `azure.communication.sms.aio.SmsClient` the adapter uses."""

    def __init__(self, answer: Any) -> None:
        self.sms = FakeSmsOperations(answer)
        self._sms_service_client = self

    async def close(self) -> None:
        pass


class FakePoller:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    async def result(self) -> dict[str, Any]:
        return self.answer


class FakeResponse:
    def __init__(self, status_code: int, body: dict[str, Any] | None = None) -> None:
        self.status_code = status_code
        self.body = body or {}

    def json(self) -> dict[str, Any]:
        return self.body


class FakeEmailClient:
    def __init__(self, answer: Any = None, status: FakeResponse | None = None) -> None:
        self.answer = answer
        self.status = status or FakeResponse(404)
        self.sends: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.lookups: list[str] = []

    async def begin_send(self, message: dict[str, Any], **kwargs: Any) -> FakePoller:
        self.sends.append((message, kwargs))
        if isinstance(self.answer, Exception):
            raise self.answer
        return FakePoller(self.answer or {"id": kwargs["operation_id"], "status": "Running"})

    async def send_request(self, request: Any, **kwargs: Any) -> FakeResponse:
        self.lookups.append(request.url)
        return self.status

    async def close(self) -> None:
        pass


def item(
    successful: bool, status: int, message_id: str | None = "Outgoing_1", error: str | None = None
) -> Any:
    return SmsSendResponse(
        value=[
            SmsSendResponseItem(
                to=PHONE,
                message_id=message_id,
                http_status_code=status,
                successful=successful,
                error_message=error,
            )
        ]
    )


def faked(clock: ManualClock, sms: Any = None, email: Any = None, **senders: str | None) -> AcsNotifier:
    chosen = {"sms_from": SMS_FROM, "email_sender": SENDER, **senders}
    return AcsNotifier(
        "https://psc.communication.azure.com",
        _standin_key,
        clock,
        sms_client=sms,
        email_client=email,
        **chosen,
    )


async def test_an_sms_carries_repeatability_ids_from_the_notification_and_asks_for_a_report(
    clock: ManualClock,
) -> None:
    sms = FakeSmsClient(item(True, 202))
    result = await faked(clock, sms, FakeEmailClient()).send_sms(PHONE, TEXT, envelope=envelope(clock))
    assert result == SendResult(True, "Outgoing_1")
    assert sms.sms.requests == [
        {
            "from": SMS_FROM,
            "smsRecipients": [
                {
                    "to": PHONE,
                    "repeatabilityRequestId": sms_repeatability_id("reminder:a-1:24h"),
                    "repeatabilityFirstSent": "Mon, 05 Jan 2026 09:00:00 GMT",
                }
            ],
            "message": TEXT,
            "smsSendOptions": {"enableDeliveryReport": True, "tag": "p-1|reminder:a-1:24h"},
        }
    ]


async def test_a_retry_repeats_the_first_attempts_time_not_its_own(clock: ManualClock) -> None:
    sms = FakeSmsClient(item(True, 202))
    started = envelope(clock)
    channel = faked(clock, sms, FakeEmailClient())
    await channel.send_sms(PHONE, TEXT, envelope=started)
    clock.advance(seconds=90)
    await channel.send_sms(PHONE, TEXT, envelope=started)
    first, again = sms.sms.requests
    assert first == again  # the same request: ACS answers it from its first time


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (400, "Invalid To phone number format.", "invalid-recipient"),
        (400, "The recipient has opted out of receiving messages.", "opted-out"),
        (403, "Destination not allowed.", "blocked"),
        (412, "Repeatability first sent outside the window.", "outcome-unknown"),
        (418, None, "rejected"),
    ],
)
async def test_a_per_recipient_failure_is_a_result_with_a_code_and_nothing_of_the_number_is_logged(
    clock: ManualClock, caplog: pytest.LogCaptureFixture, status: int, error: str | None, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    sms = FakeSmsClient(item(False, status, None, f"{error} ({PHONE})" if error else None))
    result = await faked(clock, sms, FakeEmailClient()).send_sms(PHONE, TEXT, envelope=envelope(clock))
    assert result == SendResult(False, None, reason)  # type: ignore[arg-type]
    for record in caplog.records:
        line = record.getMessage() + repr(vars(record))
        assert "601000001" not in line
        assert "Przypomnienie" not in line


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_per_recipient_failure_that_may_pass_later_is_retried_by_the_queue(
    clock: ManualClock, status: int
) -> None:
    sms = FakeSmsClient(item(False, status, None, "Try again"))
    with pytest.raises(Unavailable):
        await faked(clock, sms, FakeEmailClient()).send_sms(PHONE, TEXT, envelope=envelope(clock))


def _http_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message="refused")
    error.status_code = status
    return error


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ClientAuthenticationError(message="no"), AccessDenied),
        (_http_error(403), AccessDenied),
        (_http_error(429), Unavailable),
        (_http_error(503), Unavailable),
        (_http_error(409), Unavailable),
        (ServiceRequestError(message="connection refused"), Unavailable),
    ],
)
async def test_a_refused_request_raises_what_the_queue_should_do_about_it(
    clock: ManualClock, raised: Exception, expected: type[Exception]
) -> None:
    channel = faked(clock, FakeSmsClient(raised), FakeEmailClient(raised))
    with pytest.raises(expected):
        await channel.send_sms(PHONE, TEXT, envelope=envelope(clock))
    with pytest.raises(expected):
        await channel.send_email(ADDRESS, "S", TEXT, envelope=envelope(clock))


async def test_a_request_acs_will_never_take_is_a_rejection(clock: ManualClock) -> None:
    channel = faked(clock, FakeSmsClient(_http_error(400)), FakeEmailClient(_http_error(400)))
    assert await channel.send_sms(PHONE, TEXT, envelope=envelope(clock)) == SendResult(
        False, None, "rejected"
    )
    assert await channel.send_email(ADDRESS, "S", TEXT, envelope=envelope(clock)) == SendResult(
        False, None, "rejected"
    )


async def test_an_sms_repeated_after_the_window_is_not_sent(clock: ManualClock) -> None:
    sms = FakeSmsClient(item(True, 202))
    late = envelope(clock, ago=timedelta(minutes=4, seconds=1))
    result = await faked(clock, sms, FakeEmailClient()).send_sms(PHONE, TEXT, envelope=late)
    assert result == SendResult(False, None, "outcome-unknown")
    assert sms.sms.requests == []


async def test_an_email_carries_its_operation_id_and_repeatability_headers_with_tracking_off(
    clock: ManualClock,
) -> None:
    email = FakeEmailClient()
    result = await faked(clock, FakeSmsClient(None), email).send_email(
        ADDRESS, "Reminder", TEXT, "<p>x</p>", envelope=envelope(clock)
    )
    operation_id = email_operation_id("reminder:a-1:24h")
    assert result == SendResult(True, operation_id)
    ((message, options),) = email.sends
    assert message == {
        "senderAddress": SENDER,
        "recipients": {"to": [{"address": ADDRESS}]},
        "content": {"subject": "Reminder", "plainText": TEXT, "html": "<p>x</p>"},
        "userEngagementTrackingDisabled": True,
    }
    assert options == {
        "operation_id": operation_id,
        "headers": {
            "Repeatability-Request-Id": operation_id,
            "Repeatability-First-Sent": "Mon, 05 Jan 2026 09:00:00 GMT",
        },
        "polling": False,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            FakeResponse(200, {"status": "Succeeded"}),
            SendResult(True, email_operation_id("reminder:a-1:24h")),
        ),
        (FakeResponse(200, {"status": "Running"}), SendResult(True, email_operation_id("reminder:a-1:24h"))),
        (
            FakeResponse(200, {"status": "Failed"}),
            SendResult(False, email_operation_id("reminder:a-1:24h"), "rejected"),
        ),
    ],
)
async def test_an_email_repeated_after_the_window_is_looked_up_and_not_sent_again(
    clock: ManualClock, status: FakeResponse, expected: SendResult
) -> None:
    email = FakeEmailClient(status=status)
    late = envelope(clock, ago=timedelta(minutes=10))
    assert (
        await faked(clock, FakeSmsClient(None), email).send_email(ADDRESS, "S", TEXT, envelope=late)
        == expected
    )
    assert email.sends == []
    assert email.lookups == [
        f"/emails/operations/{email_operation_id('reminder:a-1:24h')}?api-version=2025-09-01"
    ]


async def test_an_email_acs_never_saw_is_sent_late_with_a_new_first_sent_time(clock: ManualClock) -> None:
    email = FakeEmailClient(status=FakeResponse(404))
    late = envelope(clock, ago=timedelta(minutes=10))
    result = await faked(clock, FakeSmsClient(None), email).send_email(ADDRESS, "S", TEXT, envelope=late)
    assert result.accepted
    ((_, options),) = email.sends
    assert options["headers"]["Repeatability-First-Sent"] == "Mon, 05 Jan 2026 09:00:00 GMT"  # now, not then
    assert options["operation_id"] == email_operation_id("reminder:a-1:24h")


async def test_without_a_sender_a_channel_is_not_configured(clock: ManualClock) -> None:
    channel = faked(clock, FakeSmsClient(None), FakeEmailClient(), sms_from=None, email_sender=None)
    assert channel.channels == frozenset()
    assert (
        await channel.send_sms(PHONE, TEXT, envelope=envelope(clock))
    ).failure_reason == "channel-not-configured"
    assert (await channel.send_email(ADDRESS, "S", "T", envelope=envelope(clock))).failure_reason == (
        "channel-not-configured"
    )


# --- the real SDKs against the stand-in -----------------------------------------------------


@pytest.fixture
def standin(clock: ManualClock) -> Iterator[tuple[AcsStandIn, str]]:
    fake = AcsStandIn(clock=clock)
    with fake.running() as endpoint:
        yield fake, endpoint


def settings_for(endpoint: str) -> Settings:
    return Settings(
        PSC_AUTH_MODE="dev",
        PSC_DEV_JWT_SECRET="x" * 40,
        PSC_NOTIFY="acs",
        ACS__endpoint=endpoint,
        ACS_SMS_FROM=SMS_FROM,
        ACS_EMAIL_SENDER=SENDER,
    )


async def test_the_real_sdks_send_what_acs_documents_and_a_repeat_is_sent_once(
    standin: tuple[AcsStandIn, str], clock: ManualClock
) -> None:
    fake, endpoint = standin
    channel = AcsNotifier.from_settings(settings_for(endpoint), clock)
    try:
        started = envelope(clock)
        first = await channel.send_sms(PHONE, TEXT, envelope=started)
        clock.advance(seconds=100)
        again = await channel.send_sms(PHONE, TEXT, envelope=started)
        mail = await channel.send_email(ADDRESS, "Reminder", TEXT, "<p>x</p>", envelope=started)
        mail_again = await channel.send_email(ADDRESS, "Reminder", TEXT, "<p>x</p>", envelope=started)
        await channel.ping()
    finally:
        await channel.close()
    assert first.accepted
    assert again == first
    assert mail == mail_again == SendResult(True, email_operation_id("reminder:a-1:24h"))
    assert [(s.channel, s.to, s.text, s.tag) for s in fake.sent] == [
        ("sms", PHONE, TEXT, "p-1|reminder:a-1:24h"),
        ("email", ADDRESS, TEXT, None),
    ]
    sms_request = fake.requests[0]
    assert (sms_request.method, sms_request.path, sms_request.query) == (
        "POST",
        "/sms",
        "api-version=2021-03-07",
    )
    assert sms_request.body["smsRecipients"][0]["repeatabilityRequestId"] == sms_repeatability_id(
        "reminder:a-1:24h"
    )
    email_request = fake.requests[2]
    assert email_request.path == "/emails:send"
    assert email_request.headers["operation-id"] == email_operation_id("reminder:a-1:24h")
    assert email_request.headers["repeatability-first-sent"] == "Mon, 05 Jan 2026 09:00:00 GMT"
    assert email_request.headers["authorization"].startswith("HMAC-SHA256 SignedHeaders=")


async def test_through_the_sdk_an_email_after_the_window_is_found_not_resent(
    standin: tuple[AcsStandIn, str], clock: ManualClock
) -> None:
    fake, endpoint = standin
    channel = AcsNotifier.from_settings(settings_for(endpoint), clock)
    try:
        started = envelope(clock)
        await channel.send_email(ADDRESS, "S", TEXT, envelope=started)
        clock.advance(minutes=20)
        late = await channel.send_email(ADDRESS, "S", TEXT, envelope=started)
        sms_late = await channel.send_sms(PHONE, TEXT, envelope=started)
    finally:
        await channel.close()
    assert late == SendResult(True, email_operation_id("reminder:a-1:24h"))
    assert sms_late == SendResult(False, None, "outcome-unknown")
    assert len(fake.sent) == 1
    assert [r.method for r in fake.requests] == ["POST", "GET"]


async def test_through_the_sdk_a_recipient_acs_refuses_is_a_result(
    standin: tuple[AcsStandIn, str], clock: ManualClock
) -> None:
    fake, endpoint = standin
    fake.failures[PHONE] = (400, "The recipient has opted out.")
    channel = AcsNotifier.from_settings(settings_for(endpoint), clock)
    try:
        result = await channel.send_sms(PHONE, TEXT, envelope=envelope(clock))
    finally:
        await channel.close()
    assert result == SendResult(False, None, "opted-out")
    assert fake.sent == []


async def test_a_wrong_key_is_refused_as_acs_refuses_it(
    standin: tuple[AcsStandIn, str], clock: ManualClock
) -> None:
    fake, endpoint = standin
    fake.key = "b3RoZXIta2V5"
    channel = AcsNotifier.from_settings(settings_for(endpoint), clock)
    try:
        with pytest.raises(AccessDenied):
            await channel.send_sms(PHONE, TEXT, envelope=envelope(clock))
        with pytest.raises(AccessDenied):
            await channel.ping()
    finally:
        await channel.close()
    assert fake.sent == []


# --- settings ---------------------------------------------------------------------------------


def test_only_a_loopback_endpoint_outside_azure_gets_the_standin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    monkeypatch.delenv("WEBSITE_SITE_NAME", raising=False)
    local = AcsNotifier.from_settings(settings_for("http://127.0.0.1:9"), ManualClock())
    assert local._credential_factory().key == ACS_STANDIN_KEY
    with pytest.raises(ConfigError, match="ACS__endpoint"):
        AcsNotifier.from_settings(settings_for("http://acs.example.org"), ManualClock())
    azure = AcsNotifier.from_settings(
        settings_for("https://psc.europe.communication.azure.com"), ManualClock()
    )
    assert azure._credential_factory is not _standin_key
    loopback = settings_for("http://127.0.0.1:9")
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc")  # in Azure nothing local can be listening
    with pytest.raises(ConfigError, match="https"):
        AcsNotifier.from_settings(loopback, ManualClock())


def test_first_sent_is_http_time_in_gmt_whatever_the_zone_it_was_recorded_in() -> None:
    moment = datetime(2026, 4, 14, 10, 30, 5, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Warsaw")
    )
    assert Envelope("n", "p", "reminder", "a", moment).first_sent_header == "Tue, 14 Apr 2026 10:30:05 GMT"
