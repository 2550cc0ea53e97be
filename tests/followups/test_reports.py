"""Delivery reports and inbound SMS through the `notification-reports` queue (the embedded channel
publishes the reports ACS would): delivered, a non-delivery that falls back once, STOP / START /
HELP; every report redelivered changes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.followups.reports import KEYWORD_REPLIES
from shared.notifications.api import render
from shared.runtime import Runtime
from tests.conftest import stored_items
from tests.followups.harness import (
    PATIENT_DOC,
    book,
    deliver_new,
    fu_runtime,
    ledger_events,
    outbox,
    pump,
    pump_reports,
    records,
    world,
)

__all__ = ["fu_runtime", "world"]


async def confirmation(runtime: Runtime) -> dict[str, Any]:
    return next(v for v in (await records(runtime)).values() if v["purpose"] == "confirmation")


async def test_a_delivery_report_marks_the_notification_delivered_once(world: Runtime) -> None:
    await book()
    await deliver_new(world)
    await pump(world)
    kept: list[bytes] = []
    assert await pump_reports(world, keep=kept) == 1
    assert (await confirmation(world))["status"] == "delivered"
    before = (await records(world), await ledger_events(world))
    from azure.functions.servicebus import ServiceBusMessage

    from tests.followups.harness import registered_functions

    handler = registered_functions()["notification_reports"].get_user_function()
    for body in kept:
        await handler(
            ServiceBusMessage(
                body=body, message_id="again", application_properties={}, user_properties={}, delivery_count=2
            )
        )
    assert (await records(world), await ledger_events(world)) == before
    delivered = [e for e in await ledger_events(world) if e["eventType"] == "notification.delivered"]
    assert [(e["data"]["purpose"], e["data"]["channel"]) for e in delivered] == [("confirmation", "sms")]


async def test_a_non_delivery_report_falls_back_once_to_the_next_channel(world: Runtime) -> None:
    # North America's fictional 555-01XX numbers accept and then report non-delivery.
    await world.store.container("patients").upsert({**PATIENT_DOC, "phone": "+12025550123"})
    await book()
    await deliver_new(world)
    await pump(world)
    await pump_reports(world)  # the SMS failed: the e-mail is queued
    await pump(world)
    await pump_reports(world)
    assert sorted((s["channel"], s["purpose"]) for s in await outbox(world)) == [
        ("email", "confirmation"),
        ("sms", "confirmation"),
    ]
    record = await confirmation(world)
    assert record["status"] == "delivered"
    assert [(a["channel"], a["outcome"]) for a in record["attempts"]] == [
        ("sms", "failed"),
        ("email", "delivered"),
    ]


async def test_when_the_fallback_is_not_delivered_either_the_notification_fails(world: Runtime) -> None:
    await world.store.container("patients").upsert(
        {**PATIENT_DOC, "phone": "+12025550123", "email": "anna@example.invalid"}
    )
    await book()
    await deliver_new(world)
    for _ in range(3):
        await pump(world)
        await pump_reports(world)
    record = await confirmation(world)
    assert record["status"] == "failed"
    assert len(record["attempts"]) == 2
    assert len(await outbox(world)) == 2


def inbound(text: str, event_id: str, sender: str = "+48601000001") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "topic": "/embedded",
            "subject": "/phonenumber/18005550100",
            "data": {
                "messageId": f"Incoming_{event_id}",
                "from": sender,
                "to": "+18005550100",
                "message": text,
                "receivedTimestamp": "2026-01-05T09:00:00Z",
            },
            "eventType": "Microsoft.Communication.SMSReceived",
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "eventTime": "2026-01-05T09:00:00Z",
        }
    ).encode()


async def send_inbound(runtime: Runtime, text: str, event_id: str, sender: str = "+48601000001") -> None:
    from shared.kernel.messages import OutgoingMessage

    await runtime.bus.send(
        "notification-reports", OutgoingMessage(body=inbound(text, event_id, sender), message_id=event_id)
    )
    await pump_reports(runtime)


async def test_stop_withdraws_sms_consent_start_restores_it_and_each_is_answered(world: Runtime) -> None:
    from shared.patients.api import index_patient

    await index_patient(world.store, PATIENT_DOC)
    await send_inbound(world, "Stop", "in-1")
    patient = next(p for p in await stored_items(world, "patients") if p["id"] == "p-1")
    assert patient["consent"] == {"sms": False, "email": True}
    await book()
    await deliver_new(world)
    await pump(world)
    sent = [s for s in await outbox(world) if not s["subjectId"].startswith("sms-")]
    assert [(s["channel"], s["purpose"]) for s in sent] == [("email", "confirmation")], "no SMS after STOP"
    await send_inbound(world, "START", "in-2")
    patient = next(p for p in await stored_items(world, "patients") if p["id"] == "p-1")
    assert patient["consent"]["sms"] is True
    await send_inbound(world, "help", "in-3")
    replies = [s for s in await outbox(world) if s["subjectId"].startswith("sms-")]
    assert [s["subjectId"] for s in replies] == ["sms-stop", "sms-start", "sms-help"]
    audit = [
        a
        for a in await stored_items(world, "audit")
        if a["resource"] == "patients/p-1" and a["action"] == "update"
    ]
    assert len(audit) == 2
    await send_inbound(world, "STOP", "in-1")  # Event Grid's retry of the first: nothing new
    assert len([s for s in await outbox(world) if s["subjectId"].startswith("sms-")]) == 3


STRANGER = "+48601999999"  # a number no patient has


def logged_numbers(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records whose message or extras hold a phone number of these tests."""
    return [r.getMessage() for r in caplog.records if "48601" in str(vars(r))]


async def test_help_gets_the_same_short_answer_from_any_number(
    world: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """HELP is answered from a patient's number and from a number no patient has with one fixed
    text (naming the service and STOP), filed under no patient, so the reply cannot tell whether
    the number is a patient's; AYUDA is answered in Spanish; the logs hold neither number."""
    from shared.patients.api import index_patient

    await index_patient(world.store, PATIENT_DOC)
    caplog.set_level(logging.INFO)
    await send_inbound(world, "HELP", "in-h1")
    await send_inbound(world, "help", "in-h2", sender=STRANGER)
    await send_inbound(world, "Ayuda", "in-h3", sender=STRANGER)
    await send_inbound(world, "help", "in-h2", sender=STRANGER)  # Event Grid's retry: no second reply
    replies = [s for s in await outbox(world) if s["subjectId"] == "sms-help"]
    assert [(r["to"], r["patientId"]) for r in replies] == [
        ("+48601000001", KEYWORD_REPLIES),
        (STRANGER, KEYWORD_REPLIES),
        (STRANGER, KEYWORD_REPLIES),
    ]
    known, unknown, spanish = (r["text"] for r in replies)
    assert known == unknown == render("help", "sms", language="en").text
    assert "STOP" in known
    assert "patient service center" in known
    assert spanish == render("help", "sms", language="es").text
    assert not [a for a in await stored_items(world, "audit") if a["resource"].startswith("patients/")]
    assert not logged_numbers(caplog)


async def test_stop_or_start_from_a_number_no_patient_has_changes_nothing_but_is_answered(
    world: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.patients.api import index_patient

    await index_patient(world.store, PATIENT_DOC)
    before = await stored_items(world, "patients")
    caplog.set_level(logging.INFO)
    await send_inbound(world, "STOP", "in-s1", sender=STRANGER)
    await send_inbound(world, "START", "in-s2", sender=STRANGER)
    assert await stored_items(world, "patients") == before, "no consent changed"
    assert not [a for a in await stored_items(world, "audit") if a["resource"].startswith("patients/")]
    replies = [s for s in await outbox(world) if s["subjectId"].startswith("sms-")]
    assert [(r["subjectId"], r["to"], r["patientId"]) for r in replies] == [
        ("sms-stop", STRANGER, KEYWORD_REPLIES),
        ("sms-start", STRANGER, KEYWORD_REPLIES),
    ]
    assert replies[0]["text"] == render("stop", "sms", language="en").text
    assert not await ledger_events(world, KEYWORD_REPLIES), "nothing recorded under a patient"
    assert not logged_numbers(caplog)
    assert any(getattr(r, "message_id", None) == "in-s1" for r in caplog.records)
