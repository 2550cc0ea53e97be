"""A follow-ups world on the real embedded store, bus and notification channel: a provider in
Warsaw, a patient who prefers SMS, bookings through the registered functions, the appointment
events delivered to the `followups` consumer as the relay publishes them, and the `followups`
queue pumped through its function on the manual clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions.servicebus import ServiceBusMessage

from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import Answer, invoke, make_settings, registered_functions, stored_items, token

LINK_KEY = "test-link-signing-key-0123456789abcdef"
SETTINGS = {
    "ACS_SMS_FROM": "+18005550100",
    "ACS_EMAIL_SENDER": "DoNotReply@psc.example.org",
    "PSC_LINK_SIGNING_KEY": LINK_KEY,
    "PSC_PUBLIC_BASE_URL": "https://psc.example.org",
    "PSC_PORTAL_BASE_URL": "https://portal.example.org",
}
ADMIN = token("Administrator", sub="admin-1")
PATIENT = token("Patient", sub="patient-sub-1", patient_id="p-1")
WARSAW: dict[str, Any] = {
    "name": "Dr. Anna Nowak",
    "specialty": "cardiology",
    "timeZone": "Europe/Warsaw",
    "slotMinutes": 30,
    "weeklyHours": {d: [["08:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "bookingRules": {"maxDaysAhead": 30, "minNoticeMinutes": 60},
}
# The clock starts on Monday 2026-01-05 09:00Z; Warsaw is UTC+1 in January.
FRIDAY_1300 = "2026-01-09T12:00:00.000Z"
FRIDAY_1400 = "2026-01-09T13:00:00.000Z"
POLICY = {"offsets": ["P1D", "PT2H"], "channels": ["sms", "email", "portal"]}
PATIENT_DOC: dict[str, Any] = {
    "id": "p-1",
    "type": "patient",
    "name": "Anna Kowalska",
    "language": "en",
    "timeZone": "Europe/Warsaw",
    "phone": "+48601000001",
    "email": "anna@example.org",
    "preferredChannel": "sms",
    "consent": {"sms": True, "email": True},
}


@pytest.fixture
async def fu_runtime(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Runtime]:
    rt = await build_runtime(make_settings(tmp_path / "data", **SETTINGS), clock=clock)
    with use_runtime(rt):
        yield rt
    await rt.close()


@pytest.fixture
async def world(fu_runtime: Runtime) -> Runtime:
    answer = await invoke(
        "put_provider", method="PUT", bearer=ADMIN, json_body=WARSAW, route_params={"providerId": "dr-warsaw"}
    )
    assert answer.status == 201, answer.json
    await fu_runtime.store.container("patients").upsert(PATIENT_DOC)
    policy = await invoke("put_reminder_policy", method="PUT", bearer=ADMIN, json_body=POLICY)
    assert policy.status == 200, policy.json
    return fu_runtime


async def book(start: str = FRIDAY_1300, bearer: str = PATIENT) -> str:
    body = {"providerId": "dr-warsaw", "start": start, "reason": "Check-up"}
    answer = await invoke("book_appointment", method="POST", bearer=bearer, json_body=body)
    assert answer.status == 201, answer.json
    return str(answer.json["id"])


async def reschedule(appointment_id: str, start: str) -> Answer:
    return await invoke(
        "reschedule_appointment",
        method="POST",
        bearer=PATIENT,
        json_body={"start": start},
        route_params={"appointmentId": appointment_id},
    )


async def cancel(appointment_id: str) -> Answer:
    return await invoke(
        "cancel_appointment", method="POST", bearer=PATIENT, route_params={"appointmentId": appointment_id}
    )


# Keyed by the runtime's data directory (unique per test), never by id(): ids are reused.
_READ: dict[tuple[str, str], str | None] = {}


async def events(runtime: Runtime, container: str = "appointments") -> list[dict[str, Any]]:
    """The events written since the last call, as the relay publishes them (the outbox's feed)."""
    from shared.kernel.outbox import event_message

    store: Any = runtime.store
    key = (str(runtime.settings.data_dir), container)
    batch = await store.read_changes(container, after=_READ.get(key), max_items=1000)
    _READ[key] = batch.continuation
    found = []
    for item in batch.items:
        message = event_message(item)
        if message is not None:
            found.append(json.loads(message.body))
    return found


def message(body: dict[str, Any], message_id: str, delivery_count: int = 1) -> ServiceBusMessage:
    return ServiceBusMessage(
        body=json.dumps(body).encode(),
        message_id=message_id,
        application_properties={},
        user_properties={},
        delivery_count=delivery_count,
    )


async def deliver(envelopes: list[dict[str, Any]]) -> None:
    """Each envelope to the `followups` subscription's function, as the topic delivers it."""
    handler = registered_functions()["followup_events"].get_user_function()
    for envelope in envelopes:
        await handler(message(envelope, envelope["id"]))


async def deliver_new(runtime: Runtime) -> list[dict[str, Any]]:
    found = await events(runtime)
    await deliver(found)
    return found


async def pump(runtime: Runtime, *, keep: list[dict[str, Any]] | None = None) -> int:
    """Run every `followups` message due now through its function (completing each); `keep`
    collects their bodies, for redelivery tests."""
    bus: Any = runtime.bus
    sender = registered_functions()["followup_send"].get_user_function()
    count = 0
    while True:
        received = await bus.receive("followups", max_messages=10)
        if not received:
            return count
        for item in received:
            body = json.loads(item.body)
            if keep is not None:
                keep.append(body)
            await sender(message(body, item.message_id, item.delivery_count))
            await bus.complete("followups", item.lock_token)
            count += 1


async def outbox(runtime: Runtime) -> list[dict[str, Any]]:
    """What the embedded channel sent (SMS and e-mail), oldest first."""
    items = await stored_items(runtime, "outbox")
    return sorted(items, key=lambda i: (i["createdAt"], i["id"]))


async def records(runtime: Runtime, patient_id: str = "p-1") -> dict[str, dict[str, Any]]:
    from shared.kernel.documents import where

    page = await runtime.store.container("notifications").query(
        Query(conditions=(where("type", "=", "notification"),)), partition_key=patient_id, max_items=1000
    )
    return {item["notificationId"]: item for item in page.items}


async def ledger_events(runtime: Runtime, patient_id: str = "p-1") -> list[dict[str, Any]]:
    from shared.kernel.documents import where

    page = await runtime.store.container("notifications").query(
        Query(conditions=(where("type", "=", "event"),)), partition_key=patient_id, max_items=1000
    )
    return sorted(page.items, key=lambda e: (e["version"], e["n"]))


async def pump_reports(runtime: Runtime, *, keep: list[bytes] | None = None) -> int:
    """Run every `notification-reports` message through its function (completing each)."""
    bus: Any = runtime.bus
    handler = registered_functions()["notification_reports"].get_user_function()
    count = 0
    while True:
        received = await bus.receive("notification-reports", max_messages=10)
        if not received:
            return count
        for item in received:
            if keep is not None:
                keep.append(item.body)
            await handler(
                ServiceBusMessage(
                    body=item.body,
                    message_id=item.message_id,
                    application_properties={},
                    user_properties={},
                    delivery_count=item.delivery_count,
                )
            )
            await bus.complete("notification-reports", item.lock_token)
            count += 1
