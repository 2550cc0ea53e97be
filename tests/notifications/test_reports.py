"""Delivery reports and inbound SMS from the `notification-reports` queue: Event Grid's documented
events become typed reports and keyword commands; anything else is ignored with a code, never an
exception, and nothing of a patient's number or words shows in a repr."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.notifications.reports import (
    DeliveryReport,
    Ignored,
    InboundSms,
    keyword,
    parse_report,
)

TOPIC = "/subscriptions/x/resourceGroups/g/providers/microsoft.communication/communicationservices/acs"
# The samples of Event Grid's "Azure Communication Services - SMS events" and "- Email events"
# pages (a subscription to a Service Bus queue delivers one event, not the array, per message).
SMS_DELIVERED = {
    "id": "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
    "topic": TOPIC,
    "subject": "/phonenumber/15555555555",
    "data": {
        "messageId": "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
        "from": "15555555555",
        "to": "+15555555555",
        "deliveryStatus": "Delivered",
        "deliveryStatusDetails": "No error.",
        "receivedTimestamp": "2020-09-18T00:22:20.2855749Z",
        "deliveryAttempts": [
            {"timestamp": "2020-09-18T00:22:14.9315918Z", "segmentsSucceeded": 1, "segmentsFailed": 0}
        ],
        "Tag": "p-1|reminder:a-1:24h",
    },
    "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2020-09-18T00:22:20Z",
}
SMS_RECEIVED = {
    "id": "Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e",
    "topic": TOPIC,
    "subject": "/phonenumber/15555555555",
    "data": {
        "messageId": "Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e",
        "from": "15555555555",
        "to": "15555555555",
        "message": "Great to connect with Azure Communication Services events",
        "receivedTimestamp": "2020-09-18T00:27:45.32Z",
        "segmentCount": 1,
    },
    "eventType": "Microsoft.Communication.SMSReceived",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2020-09-18T00:27:47Z",
}
EMAIL_DELIVERED = {
    "id": "00000000-0000-0000-0000-000000000000",
    "topic": "/subscriptions/x/resourceGroups/g/providers/microsoft.communication/communicationservices/acs",
    "subject": "sender/senderid@azure.com/message/00000000-0000-0000-0000-000000000000",
    "data": {
        "sender": "senderid@azure.com",
        "recipient": "receiver@azure.com",
        "messageId": "00000000-0000-0000-0000-000000000000",
        "status": "Delivered",
        "deliveryAttemptTimeStamp": "2020-09-18T00:22:20.2855749Z",
    },
    "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2020-09-18T00:22:20Z",
}


def body(event: object) -> bytes:
    return json.dumps(event).encode()


def test_an_sms_delivery_report_carries_the_message_id_and_our_tag() -> None:
    report = parse_report(body(SMS_DELIVERED))
    assert report == DeliveryReport(
        event_id=SMS_DELIVERED["id"],  # type: ignore[arg-type]
        channel="sms",
        outcome="delivered",
        provider_message_id="Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
        tag="p-1|reminder:a-1:24h",
        reason=None,
        at=datetime(2020, 9, 18, 0, 22, 20, 285574, tzinfo=UTC),
    )


def test_a_failed_sms_is_a_failure_with_a_code_not_the_carriers_words() -> None:
    failed = {**SMS_DELIVERED, "data": {**SMS_DELIVERED["data"], "deliveryStatus": "Failed"}}  # type: ignore[dict-item]
    failed["data"]["deliveryStatusDetails"] = "Recipient +15555555555 unreachable"
    report = parse_report(body(failed))
    assert isinstance(report, DeliveryReport)
    assert report.outcome == "failed"
    assert report.reason == "not-delivered"
    assert "+1555" not in repr(report)


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        ("Delivered", "delivered", None),
        ("Expanded", "delivered", None),
        ("Failed", "failed", "failed"),
        ("Bounced", "failed", "bounced"),
        ("Suppressed", "failed", "suppressed"),
        ("FilteredSpam", "failed", "filtered-spam"),
        ("Quarantined", "failed", "quarantined"),
    ],
)
def test_email_statuses_map_to_delivered_or_failed(status: str, outcome: str, reason: str | None) -> None:
    event = {**EMAIL_DELIVERED, "data": {**EMAIL_DELIVERED["data"], "status": status}}  # type: ignore[dict-item]
    report = parse_report(body(event))
    assert isinstance(report, DeliveryReport)
    assert (report.channel, report.outcome, report.reason) == ("email", outcome, reason)
    assert report.provider_message_id == "00000000-0000-0000-0000-000000000000"
    assert report.tag is None


def test_an_inbound_sms_is_a_keyword_or_plain_text_and_its_numbers_are_e164() -> None:
    plain = parse_report(body(SMS_RECEIVED))
    assert isinstance(plain, InboundSms)
    assert plain.keyword is None
    assert plain.sender == "+15555555555"
    assert "15555555555" not in repr(plain)
    assert "Great to connect" not in repr(plain)
    stop = {**SMS_RECEIVED, "data": {**SMS_RECEIVED["data"], "message": " stop. "}}  # type: ignore[dict-item]
    parsed = parse_report(body(stop))
    assert isinstance(parsed, InboundSms)
    assert parsed.keyword == "STOP"


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("STOP", "STOP"),
        ("Stop!", "STOP"),
        ("stop all", "STOP"),
        ("STOPALL", "STOP"),
        ("unsubscribe", "STOP"),
        ("Cancel", "STOP"),
        ("END", "STOP"),
        ("quit", "STOP"),
        ("opt-out", "STOP"),
        ("Opt  out", "STOP"),
        ("revoke", "STOP"),
        ("Baja", "STOP"),
        ("START", "START"),
        ("unstop", "START"),
        ("Yes", "START"),
        ("help", "HELP"),
        ("Info?", "HELP"),
        ("ayuda", "HELP"),
        ("Pomoc", "HELP"),
        ("STOP\u00a0", "STOP"),
        ("please stop", None),
        ("I will come", None),
        ("stopped", None),
        ("", None),
    ],
)
def test_keywords_follow_the_carriers_lists(text: str, command: str | None) -> None:
    assert keyword(text) == command


def test_a_one_event_array_and_cloudevents_are_read_too() -> None:
    assert isinstance(parse_report(body([SMS_DELIVERED])), DeliveryReport)
    cloud = {
        "specversion": "1.0",
        "id": "e-1",
        "type": "Microsoft.Communication.SMSReceived",
        "source": "/subscriptions/x",
        "time": "2026-04-14T08:30:00Z",
        "data": {"from": "+48601000001", "to": "+48500000000", "message": "HELP"},
    }
    parsed = parse_report(body(cloud))
    assert isinstance(parsed, InboundSms)
    assert parsed.keyword == "HELP"
    assert parsed.at == datetime(2026, 4, 14, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not-json"),
        (b"\xff\xfe", "not-json"),
        (b"[1, 2]", "not-an-event"),
        (b"[" * 100_000, "not-json"),
        (b'{"id": "x", "data": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "not-json"),
        (b'{"id": "x", "id": "y"}', "not-json"),
        (b'{"id": "x"}', "not-an-event"),
        (body({**SMS_DELIVERED, "eventType": "Microsoft.Storage.BlobCreated"}), "other-event-type"),
        (body({**SMS_DELIVERED, "data": {"deliveryStatus": "Delivered"}}), "missing-field"),
        (
            body({**SMS_DELIVERED, "data": {"messageId": "m", "deliveryStatus": "Sending"}}),
            "unknown-status",
        ),
        (body({**EMAIL_DELIVERED, "data": {"messageId": "m", "status": "Pending"}}), "unknown-status"),
        (body({**SMS_RECEIVED, "data": {"from": "1"}}), "missing-field"),
    ],
)
def test_what_cannot_be_used_is_ignored_with_a_code(raw: bytes, reason: str) -> None:
    parsed = parse_report(raw)
    assert isinstance(parsed, Ignored)
    assert parsed.reason == reason


def test_an_inbound_sms_is_not_held_to_our_text_rules() -> None:
    text = "STOP\u202e"  # a bidi override we refuse in our own fields: still the patient's words
    parsed = parse_report(body({**SMS_RECEIVED, "data": {**SMS_RECEIVED["data"], "message": text}}))
    assert isinstance(parsed, InboundSms)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parsing_never_raises(raw: bytes) -> None:
    parse_report(raw)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_parsing_any_json_never_raises(value: object) -> None:
    parse_report(json.dumps(value))
    parse_report(json.dumps({"id": "x", "eventType": "Microsoft.Communication.SMSReceived", "data": value}))
