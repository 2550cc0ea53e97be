"""What the Service Bus adapter sends, and how it maps failures, without a namespace: the SDK
client, senders, receivers and administration client are recording fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageLockLostError,
    MessageNotFoundError,
    MessageSizeExceededError,
    ServiceBusAuthorizationError,
    ServiceBusConnectionError,
)

from shared.adapters.servicebus_bus import ServiceBusMessageBus
from shared.kernel.errors import AccessDenied, Conflict, NotFound, PayloadTooLarge, Unavailable
from shared.kernel.messages import MessageLockLost, OutgoingMessage, QueueSpec

QUEUES = {spec.name: spec for spec in (QueueSpec("routing", "ROUTING_QUEUE"), QueueSpec("reminders", "R"))}
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=1)


class FakeSender:
    def __init__(self, entity: str) -> None:
        self.entity = entity
        self.sent: list[ServiceBusMessage] = []
        self.scheduled: list[tuple[ServiceBusMessage, datetime]] = []
        self.cancelled: list[int] = []
        self.raises: Exception | None = None
        self.closed = False

    async def send_messages(self, message: ServiceBusMessage) -> None:
        if self.raises:
            raise self.raises
        self.sent.append(message)

    async def schedule_messages(self, message: ServiceBusMessage, at: datetime) -> list[int]:
        if self.raises:
            raise self.raises
        self.scheduled.append((message, at))
        return [41 + len(self.scheduled)]

    async def cancel_scheduled_messages(self, sequence_number: int) -> None:
        if self.raises:
            raise self.raises
        self.cancelled.append(sequence_number)

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeReceived:
    sequence_number: int
    message_id: str
    body: Any = (b"{",)
    enqueued_time_utc: datetime = LONG_AGO
    lock_token: str = ""
    locked_until_utc: datetime = NOW + timedelta(seconds=60)
    delivery_count: int = 1
    subject: str | None = "s"
    application_properties: dict[Any, Any] = field(default_factory=lambda: {b"kind": b"x"})
    session_id: str | None = None
    correlation_id: str | None = "c"
    content_type: str | None = "application/json"
    scheduled_enqueue_time_utc: datetime | None = None
    dead_letter_reason: str | None = "Broken"
    dead_letter_error_description: str | None = "why"


class FakeReceiver:
    def __init__(self, entity: str, sub_queue: Any, messages: list[FakeReceived]) -> None:
        self.entity = entity
        self.sub_queue = sub_queue
        self.messages = messages
        self.completed: list[int] = []
        self.abandoned: list[int] = []
        self.peeks: list[tuple[int, int]] = []
        self.settle_raises: Exception | None = None
        self._handed = 0
        self.closed = False

    async def peek_messages(self, max_message_count: int, sequence_number: int = 1) -> list[FakeReceived]:
        self.peeks.append((max_message_count, sequence_number))
        eligible = [m for m in self.messages if m.sequence_number >= sequence_number]
        return eligible[:max_message_count]

    async def receive_messages(self, max_message_count: int, max_wait_time: float) -> list[FakeReceived]:
        batch = self.messages[self._handed : self._handed + max_message_count]
        self._handed += len(batch)
        for m in batch:
            m.lock_token = f"lock-{m.sequence_number}"
        return batch

    async def complete_message(self, message: FakeReceived) -> None:
        if self.settle_raises:
            raise self.settle_raises
        self.completed.append(message.sequence_number)
        self.messages.remove(message)
        self._handed -= 1

    async def abandon_message(self, message: FakeReceived) -> None:
        self.abandoned.append(message.sequence_number)

    async def renew_message_lock(self, message: FakeReceived) -> datetime:
        return NOW + timedelta(minutes=2)

    async def dead_letter_message(self, message: FakeReceived, **kw: Any) -> None:
        self.completed.append(message.sequence_number)

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeRuntimeProperties:
    active_message_count: int
    scheduled_message_count: int
    dead_letter_message_count: int


class FakeAdmin:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.raises: Exception | None = None

    async def get_queue_runtime_properties(self, entity: str) -> FakeRuntimeProperties:
        self.asked.append(entity)
        if self.raises is not None:
            raise self.raises
        return FakeRuntimeProperties(3, 2, 1)

    async def close(self) -> None:
        pass


class FakeClient:
    def __init__(self) -> None:
        self.senders: dict[str, FakeSender] = {}
        self.receivers: list[FakeReceiver] = []
        self.queue_messages: list[FakeReceived] = []
        self.dead_letters: list[FakeReceived] = []
        self.closed = False

    def get_queue_sender(self, entity: str) -> FakeSender:
        sender = self.senders[entity] = FakeSender(entity)
        return sender

    def get_queue_receiver(self, entity: str, sub_queue: Any = None, **kw: Any) -> FakeReceiver:
        messages = self.dead_letters if sub_queue == ServiceBusSubQueue.DEAD_LETTER else self.queue_messages
        receiver = FakeReceiver(entity, sub_queue, messages)
        self.receivers.append(receiver)
        return receiver

    async def close(self) -> None:
        self.closed = True


class Harness:
    def __init__(self) -> None:
        self.clients: list[FakeClient] = []
        self.admin = FakeAdmin()

        def factory() -> FakeClient:
            client = FakeClient()
            self.clients.append(client)
            return client

        self.bus = ServiceBusMessageBus(
            "psc.servicebus.windows.net",
            QUEUES,
            lambda: object(),
            entity_names={"routing": "routing-prod"},
            client_factory=factory,
            admin_factory=lambda: self.admin,
            clock=lambda: NOW,
        )

    @property
    def client(self) -> FakeClient:
        return self.clients[0]


def outgoing(**fields: Any) -> OutgoingMessage:
    return OutgoingMessage(body=b'{"conversationId": "c1"}', message_id="routing:c1:1", **fields)


# -- what is sent ----------------------------------------------------------------------------------


async def test_no_client_is_created_before_first_use_and_senders_are_cached() -> None:
    harness = Harness()
    assert harness.clients == []

    await harness.bus.send("routing", outgoing())
    await harness.bus.send("routing", outgoing())

    assert len(harness.clients) == 1
    assert list(harness.client.senders) == ["routing-prod"]  # the queue's configured entity name
    assert len(harness.client.senders["routing-prod"].sent) == 2


async def test_a_sent_message_carries_every_field() -> None:
    harness = Harness()

    await harness.bus.send(
        "reminders",
        outgoing(
            subject="reminder.due",
            application_properties={"appointmentId": "a1", "attempt": 2},
            session_id="sess",
            correlation_id="corr",
            content_type="application/json",
        ),
    )

    (sent,) = harness.client.senders["reminders"].sent
    assert b"".join(sent.body) == b'{"conversationId": "c1"}'
    assert sent.message_id == "routing:c1:1"
    assert sent.subject == "reminder.due"
    assert sent.application_properties == {"appointmentId": "a1", "attempt": 2}
    assert sent.session_id == "sess"
    assert sent.correlation_id == "corr"
    assert sent.content_type == "application/json"


async def test_schedule_sends_aware_utc_and_returns_the_sequence_number() -> None:
    harness = Harness()
    local = datetime(2026, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))

    sequence = await harness.bus.schedule("reminders", outgoing(), local)

    ((message, at),) = harness.client.senders["reminders"].scheduled
    assert sequence == 42
    assert at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert at.tzinfo is UTC
    assert message.message_id == "routing:c1:1"


async def test_scheduling_at_a_naive_time_is_refused() -> None:
    harness = Harness()

    with pytest.raises(ValueError, match="aware"):
        await harness.bus.schedule("reminders", outgoing(), datetime(2026, 3, 1, 10, 0))


async def test_cancelling_passes_the_sequence_number_and_ignores_not_found() -> None:
    harness = Harness()
    await harness.bus.cancel_scheduled("reminders", 42)
    sender = harness.client.senders["reminders"]
    sender.raises = MessageNotFoundError(message="already enqueued")

    await harness.bus.cancel_scheduled("reminders", 43)

    assert sender.cancelled == [42]


async def test_an_unknown_queue_is_a_programming_error() -> None:
    harness = Harness()

    with pytest.raises(KeyError):
        await harness.bus.send("nope", outgoing())


# -- error mapping ---------------------------------------------------------------------------------


async def test_connection_failures_are_unavailable_and_the_sender_is_rebuilt() -> None:
    harness = Harness()
    await harness.bus.send("reminders", outgoing())
    broken = harness.client.senders["reminders"]
    broken.raises = ServiceBusConnectionError(message="link detached")

    with pytest.raises(Unavailable):
        await harness.bus.send("reminders", outgoing())
    await harness.bus.send("reminders", outgoing())

    assert broken.closed
    assert harness.client.senders["reminders"] is not broken
    assert len(harness.client.senders["reminders"].sent) == 1


async def test_an_oversized_message_is_payload_too_large() -> None:
    harness = Harness()
    await harness.bus.send("reminders", outgoing())
    harness.client.senders["reminders"].raises = MessageSizeExceededError(message="too big")

    with pytest.raises(PayloadTooLarge):
        await harness.bus.send("reminders", outgoing())


async def test_scheduling_failures_are_unavailable() -> None:
    harness = Harness()
    await harness.bus.send("reminders", outgoing())
    harness.client.senders["reminders"].raises = ServiceBusConnectionError(message="down")

    with pytest.raises(Unavailable):
        await harness.bus.schedule("reminders", outgoing(), NOW)


async def test_a_missing_send_claim_is_access_denied_still_503_to_callers() -> None:
    harness = Harness()
    await harness.bus.send("reminders", outgoing())
    harness.client.senders["reminders"].raises = ServiceBusAuthorizationError(
        message="Unauthorized access. 'Send' claim(s) are required to perform this operation."
    )

    with pytest.raises(AccessDenied) as caught:
        await harness.bus.send("reminders", outgoing())

    assert caught.value.status == 503


# -- receiving -------------------------------------------------------------------------------------


async def test_received_messages_are_converted_and_settled_by_lock_token() -> None:
    harness = Harness()
    harness.bus._bus_client().queue_messages.append(FakeReceived(7, "m-7", body=(b"ab", b"c")))

    (got,) = await harness.bus.receive("reminders")
    await harness.bus.complete("reminders", got.lock_token)

    assert got.body == b"abc"
    assert got.application_properties == {"kind": "x"}
    assert got.enqueued_time.tzinfo is not None
    with pytest.raises(MessageLockLost):
        await harness.bus.complete("reminders", got.lock_token)


async def test_a_lost_lock_is_reported_as_message_lock_lost() -> None:
    harness = Harness()
    harness.bus._bus_client().queue_messages.append(FakeReceived(7, "m-7"))
    (got,) = await harness.bus.receive("reminders")
    harness.client.receivers[0].settle_raises = MessageLockLostError(message="expired")

    with pytest.raises(MessageLockLost):
        await harness.bus.complete("reminders", got.lock_token)


# -- dead-letter administration --------------------------------------------------------------------


def refused(status: int) -> HttpResponseError:
    """What the administration client raises for an identity without Manage (401 is mapped to
    ClientAuthenticationError by its generated code; a 403 stays an HttpResponseError)."""
    response = SimpleNamespace(status_code=status, reason="Unauthorized", headers={}, text=lambda *a, **k: "")
    kind = ClientAuthenticationError if status == 401 else HttpResponseError
    return kind(message="Manage,EntityRead claims required for this operation.", response=response)


@pytest.mark.parametrize("status", [401, 403])
async def test_depths_without_the_manage_right_say_so_naming_the_namespace(status: int) -> None:
    harness = Harness()
    harness.admin.raises = refused(status)

    with pytest.raises(AccessDenied) as caught:
        await harness.bus.depths(["routing"])

    assert caught.value.right == "Manage"
    assert caught.value.resource == "psc.servicebus.windows.net"
    assert caught.value.status == 503  # to an API caller it is still an unavailable dependency


async def test_a_credential_that_got_no_token_is_not_a_missing_role() -> None:
    harness = Harness()
    harness.admin.raises = ClientAuthenticationError(message="no credential available")

    with pytest.raises(Unavailable) as caught:
        await harness.bus.depths(["routing"])

    assert not isinstance(caught.value, AccessDenied)


async def test_depths_ask_the_administration_client_for_each_queue() -> None:
    harness = Harness()

    depths = await harness.bus.depths(["routing", "reminders"])

    assert harness.admin.asked == ["routing-prod", "reminders"]
    assert [(d.queue, d.active, d.scheduled, d.dead_letter) for d in depths] == [
        ("routing", 3, 2, 1),
        ("reminders", 3, 2, 1),
    ]


async def test_peeking_dead_letters_reads_the_dead_letter_sub_queue_from_the_front() -> None:
    harness = Harness()
    harness.bus._bus_client().dead_letters.extend(FakeReceived(n, f"m-{n}") for n in (3, 5, 9))

    peeked = await harness.bus.peek_dead_letters("reminders", max_messages=2)

    receiver = harness.client.receivers[0]
    assert receiver.sub_queue == ServiceBusSubQueue.DEAD_LETTER
    assert receiver.peeks[0] == (2, 1)
    assert [(d.sequence_number, d.reason, d.description) for d in peeked] == [
        (3, "Broken", "why"),
        (5, "Broken", "why"),
    ]
    assert receiver.closed


async def test_resubmit_sends_a_copy_completes_the_dead_letter_and_releases_the_others() -> None:
    harness = Harness()
    harness.bus._bus_client().dead_letters.extend(FakeReceived(n, f"m-{n}") for n in (3, 5, 9))

    await harness.bus.resubmit_dead_letter("reminders", 5)

    (copy,) = harness.client.senders["reminders"].sent
    assert copy.message_id == "m-5"
    assert copy.subject == "s"
    assert copy.correlation_id == "c"
    assert copy.application_properties == {"kind": "x"}
    scan = harness.client.receivers[-1]
    assert scan.completed == [5]
    assert scan.abandoned == [3, 9]  # received in the same batch, released untouched
    assert [m.sequence_number for m in harness.client.dead_letters] == [3, 9]


async def test_resubmitting_an_absent_dead_letter_is_not_found_and_locks_nothing() -> None:
    harness = Harness()
    harness.bus._bus_client().dead_letters.append(FakeReceived(3, "m-3"))

    with pytest.raises(NotFound):
        await harness.bus.resubmit_dead_letter("reminders", 4)

    assert len(harness.client.receivers) == 1  # only the peek; no peek-lock scan
    assert harness.client.senders == {}


async def test_a_dead_letter_inside_the_duplicate_window_is_refused_rather_than_silently_dropped() -> None:
    harness = Harness()
    harness.bus._bus_client().dead_letters.append(
        FakeReceived(3, "m-3", enqueued_time_utc=NOW - timedelta(minutes=2))
    )

    with pytest.raises(Conflict, match="duplicate-detection window"):
        await harness.bus.resubmit_dead_letter("reminders", 3)


async def test_resubmit_all_scans_once_and_leaves_recent_ones_in_place() -> None:
    harness = Harness()
    dead = harness.bus._bus_client().dead_letters
    dead.extend(FakeReceived(n, f"m-{n}") for n in (1, 2))
    dead.append(FakeReceived(3, "m-3", enqueued_time_utc=NOW))

    done = await harness.bus.resubmit_dead_letters("reminders", None)

    assert done == [1, 2]
    assert [m.sequence_number for m in dead] == [3]


# -- configuration ---------------------------------------------------------------------------------


def test_only_the_emulator_connection_string_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.kernel.errors import ConfigError

    for marker in ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME"):
        monkeypatch.delenv(marker, raising=False)
    emulator = "Endpoint=sb://127.0.0.1;SharedAccessKeyName=R;SharedAccessKey=K;UseDevelopmentEmulator=true;"
    production = "Endpoint=sb://prod.servicebus.windows.net/;SharedAccessKeyName=R;SharedAccessKey=K"

    def settings(connection: str) -> Any:
        return SimpleNamespace(
            servicebus_connection=connection, servicebus_namespace=None, azure_client_id=None
        )

    assert isinstance(ServiceBusMessageBus.from_settings(settings(emulator), QUEUES), ServiceBusMessageBus)
    with pytest.raises(ConfigError, match="emulator"):
        ServiceBusMessageBus.from_settings(settings(production), QUEUES)


def test_a_namespace_or_an_emulator_connection_is_required() -> None:
    with pytest.raises(ValueError, match="namespace"):
        ServiceBusMessageBus(None, QUEUES)
