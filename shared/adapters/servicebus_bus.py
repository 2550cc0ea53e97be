"""Message bus on Azure Service Bus queues, through the async SDK.

Implements `MessageBus` (what functions use), `DeadLetterAdmin` (what `python -m ops` uses) and
`QueueReceiver` (peek-lock receiving for the contract suite and tools; in Azure the Functions host
receives for the queue triggers).

Connection: the namespace (`ServiceBusConnection__fullyQualifiedNamespace`) with the managed identity,
or a connection string only when it is the local emulator's (`UseDevelopmentEmulator=true`).
The client, one sender per queue and the receivers are created on first use and cached.

Dead-letter resubmission: Service Bus cannot fetch a dead-lettered message by sequence number for
settlement (only deferred messages can be). We peek first (no lock, no cost) to learn whether the
message exists, then receive from the dead-letter sub-queue in peek-lock batches until we meet it,
holding the locks of the others, send a copy to the queue, complete the dead-lettered original and
abandon the rest. The cost is one receive per message ahead of it in the dead-letter queue (each
bumps that message's delivery count, which means nothing in a dead-letter queue) and the scan must
finish inside the lock duration; resubmitting many at once scans once (`resubmit_dead_letters`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageNotFoundError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from shared.adapters.azure_credentials import close_quietly
from shared.errors import AccessDenied, Conflict, NotFound, PayloadTooLarge, Unavailable
from shared.ports.messages import (
    DeadLetteredMessage,
    MessageLockLost,
    OutgoingMessage,
    QueueDepth,
    QueueSpec,
    ReceivedMessage,
)

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

_SCAN_BATCH = 50
_SCAN_WAIT_SECONDS = 5.0
_PEEK_BATCH = 100


@contextlib.contextmanager
def _mapped_errors(queue: str) -> Iterator[None]:
    try:
        yield
    except MessageSizeExceededError:
        raise PayloadTooLarge("The message exceeds the queue's message size limit.") from None
    except MessagingEntityNotFoundError as exc:
        log.error("service bus queue %s does not exist: check the deployment", queue)
        raise Unavailable(f"Queue {queue} is not provisioned.") from exc
    except ServiceBusAuthorizationError as exc:
        # The token was accepted but lacks the claim (Send or Listen) the operation needs.
        raise AccessDenied(f"Queue {queue} refused this identity.", right="Send/Listen") from exc
    except (ServiceBusError, ClientAuthenticationError, OSError) as exc:
        raise Unavailable("The message bus cannot be reached.") from exc


def _aware_utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("scheduled time must be an aware datetime")
    return when.astimezone(UTC)


def _as_utc(when: datetime | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _body(message: Any) -> bytes:
    body = message.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"".join(bytes(part) for part in body)


def _properties(message: Any) -> dict[str, Any]:
    return {_text(key): _text(value) for key, value in (message.application_properties or {}).items()}


def to_servicebus_message(message: OutgoingMessage) -> ServiceBusMessage:
    return ServiceBusMessage(
        message.body,
        message_id=message.message_id,
        subject=message.subject,
        application_properties=dict(message.application_properties),  # type: ignore[arg-type]
        session_id=message.session_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
    )


def _copy_for_resubmit(message: Any) -> ServiceBusMessage:
    return ServiceBusMessage(
        _body(message),
        message_id=message.message_id,
        subject=message.subject,
        application_properties=_properties(message),  # type: ignore[arg-type]
        session_id=message.session_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
    )


class ServiceBusMessageBus:
    """Implements `MessageBus`, `QueueReceiver` and `DeadLetterAdmin` on Service Bus queues."""

    def __init__(
        self,
        namespace: str | None,
        queues: Mapping[str, QueueSpec],
        credential: Callable[[], Any] | None = None,
        *,
        connection_string: str | None = None,
        entity_names: Mapping[str, str] | None = None,
        receive_wait_seconds: float = 5.0,
        client_factory: Callable[[], Any] | None = None,
        admin_factory: Callable[[], Any] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Give `namespace` + `credential` (called once, on first use; returns an async token
        credential the bus then owns), or an emulator `connection_string`. `entity_names` maps a
        catalogue queue to its Service Bus queue name (default: the same name)."""
        if not connection_string and not (namespace and credential):
            raise ValueError("a namespace with a credential, or an emulator connection string, is required")
        self.namespace = namespace
        self._queues = dict(queues)
        self._credential_factory = credential
        self._connection_string = connection_string
        self._entities = {name: (entity_names or {}).get(name, name) for name in self._queues}
        self._receive_wait = receive_wait_seconds
        self._client_factory = client_factory or self._sdk_client
        self._admin_factory = admin_factory or self._sdk_admin_client
        self._now = clock or (lambda: datetime.now(UTC))
        self._credential: Any = None
        self._client: Any = None
        self._admin: Any = None
        self._senders: dict[str, Any] = {}
        self._receivers: dict[str, Any] = {}
        self._locked: dict[str, tuple[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, queues: Mapping[str, QueueSpec]) -> ServiceBusMessageBus:
        from shared.adapters.azure_credentials import azure_credential, is_servicebus_emulator_connection
        from shared.config import running_in_azure
        from shared.errors import ConfigError

        # Each queue's name lives in the app setting its trigger uses (`%SETTING%`); Bicep sets them.
        entity_names = {name: os.environ.get(spec.setting) or name for name, spec in queues.items()}
        # getattr: tolerate a Settings without the field (it is added to shared/config.py separately).
        connection: str | None = settings.servicebus_connection
        if connection and not running_in_azure():
            if not is_servicebus_emulator_connection(connection):
                raise ConfigError(
                    "ServiceBusConnection: only the emulator's connection string"
                    " (UseDevelopmentEmulator=true) is accepted; in Azure use"
                    " ServiceBusConnection__fullyQualifiedNamespace with an identity"
                )
            return cls(None, queues, connection_string=connection, entity_names=entity_names)
        if not settings.servicebus_namespace:
            raise ConfigError(
                "ServiceBusConnection__fullyQualifiedNamespace: required when PSC_BUS=servicebus"
            )
        return cls(
            settings.servicebus_namespace,
            queues,
            lambda: azure_credential(settings),
            entity_names=entity_names,
        )

    # -- clients -------------------------------------------------------------------------------

    def _sdk_client(self) -> Any:
        from azure.servicebus.aio import ServiceBusClient

        if self._connection_string:
            return ServiceBusClient.from_connection_string(self._connection_string)
        return ServiceBusClient(*self._namespace_and_credential())

    def _sdk_admin_client(self) -> Any:
        from azure.servicebus.aio.management import ServiceBusAdministrationClient

        if self._connection_string:
            return ServiceBusAdministrationClient.from_connection_string(self._connection_string)
        return ServiceBusAdministrationClient(*self._namespace_and_credential())

    def _namespace_and_credential(self) -> tuple[str, Any]:
        if self.namespace is None or self._credential_factory is None:
            raise ValueError("no namespace and credential configured")
        if self._credential is None:
            self._credential = self._credential_factory()
        return self.namespace, self._credential

    def _bus_client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _entity(self, queue: str) -> str:
        try:
            return self._entities[queue]
        except KeyError:
            raise KeyError(f"unknown queue {queue!r}") from None

    def _sender(self, queue: str) -> Any:
        sender = self._senders.get(queue)
        if sender is None:
            sender = self._senders[queue] = self._bus_client().get_queue_sender(self._entity(queue))
        return sender

    async def _discard_sender(self, queue: str) -> None:
        # A sender whose link failed is rebuilt on the next call rather than reused.
        sender = self._senders.pop(queue, None)
        if sender is not None:
            await close_quietly(sender)

    # -- MessageBus -------------------------------------------------------------------------------

    async def send(self, queue: str, message: OutgoingMessage) -> None:
        sender = self._sender(queue)
        try:
            with _mapped_errors(queue):
                await sender.send_messages(to_servicebus_message(message))
        except Unavailable:
            await self._discard_sender(queue)
            raise

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        when = _aware_utc(at)
        sender = self._sender(queue)
        try:
            with _mapped_errors(queue):
                sequence_numbers = await sender.schedule_messages(to_servicebus_message(message), when)
        except Unavailable:
            await self._discard_sender(queue)
            raise
        return int(sequence_numbers[0])

    async def cancel_scheduled(self, queue: str, sequence_number: int) -> None:
        sender = self._sender(queue)
        try:
            with _mapped_errors(queue):
                try:
                    await sender.cancel_scheduled_messages(sequence_number)
                except MessageNotFoundError:
                    return  # already enqueued or cancelled: the port makes this a no-op
        except Unavailable:
            await self._discard_sender(queue)
            raise

    async def ping(self) -> None:
        """Peek one message on the first queue: proves the namespace answers and we may listen."""
        if not self._queues:
            return
        queue = next(iter(self._queues))
        with _mapped_errors(queue):
            receiver = self._bus_client().get_queue_receiver(self._entity(queue))
            try:
                await receiver.peek_messages(max_message_count=1)
            finally:
                await close_quietly(receiver)

    async def close(self) -> None:
        for resource in [*self._senders.values(), *self._receivers.values()]:
            await close_quietly(resource)
        self._senders.clear()
        self._receivers.clear()
        self._locked.clear()
        for attribute in ("_client", "_admin", "_credential"):
            resource = getattr(self, attribute)
            setattr(self, attribute, None)
            if resource is not None:
                await close_quietly(resource)

    # -- QueueReceiver ----------------------------------------------------------------------------

    def _receiver(self, queue: str) -> Any:
        receiver = self._receivers.get(queue)
        if receiver is None:
            receiver = self._receivers[queue] = self._bus_client().get_queue_receiver(self._entity(queue))
        return receiver

    async def receive(self, queue: str, max_messages: int = 1) -> list[ReceivedMessage]:
        receiver = self._receiver(queue)
        with _mapped_errors(queue):
            messages = await receiver.receive_messages(
                max_message_count=max_messages, max_wait_time=self._receive_wait
            )
        received = []
        for message in messages:
            token = str(message.lock_token)
            self._locked[token] = (queue, message)
            received.append(
                ReceivedMessage(
                    body=_body(message),
                    message_id=str(message.message_id),
                    sequence_number=int(message.sequence_number),
                    delivery_count=int(message.delivery_count or 0),
                    enqueued_time=_as_utc(message.enqueued_time_utc),
                    lock_token=token,
                    locked_until=_as_utc(message.locked_until_utc),
                    subject=message.subject,
                    application_properties=_properties(message),
                    session_id=message.session_id,
                    correlation_id=message.correlation_id,
                    content_type=message.content_type,
                    scheduled_enqueue_time=message.scheduled_enqueue_time_utc,
                )
            )
        return received

    async def _settle(self, queue: str, lock_token: str, action: str, **kwargs: Any) -> Any:
        held = self._locked.get(lock_token)
        if held is None or held[0] != queue:
            raise MessageLockLost("the lock is unknown, expired or already settled")
        receiver = self._receiver(queue)
        with _mapped_errors(queue):
            try:
                result = await getattr(receiver, action)(held[1], **kwargs)
            except (MessageLockLostError, MessageAlreadySettled):
                self._locked.pop(lock_token, None)
                raise MessageLockLost("the lock expired or the message was settled already") from None
        if action != "renew_message_lock":
            self._locked.pop(lock_token, None)
        return result

    async def complete(self, queue: str, lock_token: str) -> None:
        await self._settle(queue, lock_token, "complete_message")

    async def abandon(self, queue: str, lock_token: str) -> None:
        await self._settle(queue, lock_token, "abandon_message")

    async def renew_lock(self, queue: str, lock_token: str) -> datetime:
        return _as_utc(await self._settle(queue, lock_token, "renew_message_lock"))

    async def dead_letter(
        self, queue: str, lock_token: str, reason: str, description: str | None = None
    ) -> None:
        await self._settle(
            queue, lock_token, "dead_letter_message", reason=reason, error_description=description
        )

    # -- DeadLetterAdmin --------------------------------------------------------------------------

    def _admin_client(self) -> Any:
        if self._admin is None:
            self._admin = self._admin_factory()
        return self._admin

    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        admin = self._admin_client()
        depths = []
        for queue in queues:
            with _mapped_errors(queue):
                try:
                    properties = await admin.get_queue_runtime_properties(self._entity(queue))
                except ResourceNotFoundError as exc:
                    raise Unavailable(f"Queue {queue} is not provisioned.") from exc
                except HttpResponseError as exc:
                    # 401 "Manage,EntityRead claims required": Sender/Receiver roles lack Manage.
                    # A credential that got no token at all has no status code and is not this.
                    if exc.status_code in (401, 403):
                        refused = "Service Bus refused the management call."
                        raise AccessDenied(refused, right="Manage", resource=self.namespace) from exc
                    raise Unavailable("The message bus cannot be reached.") from exc
                except AzureError as exc:
                    raise Unavailable("The message bus cannot be reached.") from exc
            depths.append(
                QueueDepth(
                    queue=queue,
                    active=int(properties.active_message_count or 0),
                    scheduled=int(properties.scheduled_message_count or 0),
                    dead_letter=int(properties.dead_letter_message_count or 0),
                )
            )
        return depths

    async def peek_dead_letters(self, queue: str, max_messages: int = 50) -> list[DeadLetteredMessage]:
        # A fresh receiver each time: a receiver's peek cursor moves on, ours must start at the front.
        receiver = self._bus_client().get_queue_receiver(
            self._entity(queue), sub_queue=ServiceBusSubQueue.DEAD_LETTER
        )
        found: list[DeadLetteredMessage] = []
        try:
            with _mapped_errors(queue):
                next_sequence = 1
                while len(found) < max_messages:
                    batch = await receiver.peek_messages(
                        max_message_count=min(_PEEK_BATCH, max_messages - len(found)),
                        sequence_number=next_sequence,
                    )
                    if not batch:
                        break
                    found.extend(_dead_lettered(message) for message in batch)
                    next_sequence = int(batch[-1].sequence_number) + 1
        finally:
            await close_quietly(receiver)
        return found

    async def resubmit_dead_letter(self, queue: str, sequence_number: int) -> None:
        resubmitted = await self.resubmit_dead_letters(queue, [sequence_number])
        if sequence_number not in resubmitted:
            raise NotFound(f"No dead-lettered message {sequence_number} in {queue}.")

    async def resubmit_dead_letters(self, queue: str, sequence_numbers: Collection[int] | None) -> list[int]:
        """Resubmit the given dead-lettered messages (None: all) in one scan; returns the sequence
        numbers resubmitted. Refuses (Conflict) a message still inside the queue's duplicate-detection
        window: Service Bus would drop the copy silently, since it keeps the original's message id."""
        wanted = None if sequence_numbers is None else set(sequence_numbers)
        if wanted is not None:
            await self._check_resubmittable(queue, wanted)
        receiver = self._bus_client().get_queue_receiver(
            self._entity(queue), sub_queue=ServiceBusSubQueue.DEAD_LETTER
        )
        sender = self._sender(queue)
        held: list[Any] = []
        seen: set[int] = set()
        done: list[int] = []
        try:
            with _mapped_errors(queue):
                while wanted is None or len(done) < len(wanted):
                    batch = await receiver.receive_messages(
                        max_message_count=_SCAN_BATCH, max_wait_time=_SCAN_WAIT_SECONDS
                    )
                    if not batch:
                        break
                    fresh = [message for message in batch if int(message.sequence_number) not in seen]
                    if not fresh:
                        held.extend(batch)
                        break  # locks expired and the scan came round again
                    for message in fresh:
                        sequence = int(message.sequence_number)
                        seen.add(sequence)
                        if wanted is not None and sequence not in wanted:
                            held.append(message)
                            continue
                        if wanted is None and self._inside_duplicate_window(queue, message.enqueued_time_utc):
                            held.append(message)
                            continue
                        await sender.send_messages(_copy_for_resubmit(message))
                        await receiver.complete_message(message)
                        done.append(sequence)
                        log.info(
                            "dead letter resubmitted",
                            extra={"queue": queue, "sequence_number": sequence},
                        )
        finally:
            for message in held:
                with contextlib.suppress(Exception):
                    await receiver.abandon_message(message)
            await close_quietly(receiver)
        return done

    async def _check_resubmittable(self, queue: str, wanted: set[int]) -> None:
        receiver = self._bus_client().get_queue_receiver(
            self._entity(queue), sub_queue=ServiceBusSubQueue.DEAD_LETTER
        )
        try:
            with _mapped_errors(queue):
                for sequence in sorted(wanted):
                    peeked = await receiver.peek_messages(max_message_count=1, sequence_number=sequence)
                    if not peeked or int(peeked[0].sequence_number) != sequence:
                        raise NotFound(f"No dead-lettered message {sequence} in {queue}.")
                    until = self._duplicate_window_end(queue, peeked[0].enqueued_time_utc)
                    if until is not None:
                        raise Conflict(
                            f"Dead-lettered message {sequence} is inside the duplicate-detection window;"
                            f" resubmit after {until.isoformat()}."
                        )
        finally:
            await close_quietly(receiver)

    def _duplicate_window_end(self, queue: str, enqueued: datetime | None) -> datetime | None:
        end = _as_utc(enqueued) + self._queues[queue].duplicate_detection_window
        return end if end > self._now() else None

    def _inside_duplicate_window(self, queue: str, enqueued: datetime | None) -> bool:
        return self._duplicate_window_end(queue, enqueued) is not None


def _dead_lettered(message: Any) -> DeadLetteredMessage:
    return DeadLetteredMessage(
        body=_body(message),
        message_id=str(message.message_id),
        sequence_number=int(message.sequence_number),
        delivery_count=int(message.delivery_count or 0),
        enqueued_time=_as_utc(message.enqueued_time_utc),
        reason=message.dead_letter_reason or "",
        description=message.dead_letter_error_description,
        subject=message.subject,
        application_properties=_properties(message),
        correlation_id=message.correlation_id,
    )
