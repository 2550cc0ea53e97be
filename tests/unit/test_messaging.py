"""Correlation ids flow from an HTTP request into the messages it causes, and on through the
queue handler into the messages that handler sends."""

from __future__ import annotations

import json

from azure.functions.servicebus import ServiceBusMessage

from shared.kernel.messaging import handling, json_message
from shared.kernel.observability import correlation_id_var, request_scope


def test_a_message_sent_while_handling_a_request_carries_its_correlation_id() -> None:
    with request_scope("http-corr-0001"):
        message = json_message({"a": 1}, message_id="thing-done:42", subject="thing.done", kind="x")
    assert message.correlation_id == "http-corr-0001"
    assert message.message_id == "thing-done:42"
    assert json.loads(message.body) == {"a": 1}
    assert message.application_properties == {"kind": "x"}


def test_a_queue_handler_continues_the_senders_correlation_id() -> None:
    incoming = ServiceBusMessage(
        body=b"{}",
        message_id="thing-done:42",
        correlation_id="http-corr-0001",
        application_properties={},
        user_properties={},
        delivery_count=1,
    )
    with handling(incoming) as correlation_id:
        assert correlation_id == "http-corr-0001"
        follow_up = json_message({}, message_id="next:42", subject="next")
    assert follow_up.correlation_id == "http-corr-0001"
    assert correlation_id_var.get() is None


def test_without_a_correlation_id_the_message_id_stands_in() -> None:
    incoming = ServiceBusMessage(
        body=b"{}", message_id="m-1", application_properties={}, user_properties={}, delivery_count=1
    )
    with handling(incoming) as correlation_id:
        assert correlation_id == "m-1"
