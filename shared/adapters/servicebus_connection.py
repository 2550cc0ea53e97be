"""One Service Bus namespace as the adapter sees it: the SDK client and administration client
(created on first use), senders cached per entity, catalogue names mapped to the deployed entity
names, and SDK errors mapped to the port's.

Entities are named as in the catalogue: a queue, a topic, or `topic/subscriptions/sub`. The deployed
names come from the app settings the triggers use (`%SETTING%`), so the adapter always talks to the
entity the Functions host listens on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from shared.adapters.azure_credentials import close_quietly
from shared.kernel.errors import AccessDenied, PayloadTooLarge, Unavailable
from shared.kernel.messages import (
    OutgoingMessage,
    QueueSpec,
    TopicSpec,
    subscription_entity,
)

log = logging.getLogger("shared.adapters.servicebus_bus")


@contextlib.contextmanager
def mapped_errors(entity: str) -> Iterator[None]:
    try:
        yield
    except MessageSizeExceededError:
        raise PayloadTooLarge("The message or batch exceeds the Service Bus size limit.") from None
    except MessagingEntityNotFoundError as exc:
        log.error("service bus entity %s does not exist: check the deployment", entity)
        raise Unavailable(f"{entity} is not provisioned.") from exc
    except ServiceBusAuthorizationError as exc:
        # The token was accepted but lacks the claim (Send or Listen) the operation needs.
        raise AccessDenied(f"{entity} refused this identity.", right="Send/Listen") from exc
    except (ServiceBusError, ClientAuthenticationError, OSError) as exc:
        raise Unavailable("The message bus cannot be reached.") from exc


def aware_utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("scheduled time must be an aware datetime")
    return when.astimezone(UTC)


def as_utc(when: datetime | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def body_of(message: Any) -> bytes:
    body = message.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"".join(bytes(part) for part in body)


def properties_of(message: Any) -> dict[str, Any]:
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


def copy_for_resubmit(message: Any) -> ServiceBusMessage:
    return ServiceBusMessage(
        body_of(message),
        message_id=message.message_id,
        subject=message.subject,
        application_properties=properties_of(message),  # type: ignore[arg-type]
        session_id=message.session_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
    )


@dataclass(frozen=True)
class Deployed:
    """A catalogue entity and where it lives: a queue, a topic, or a topic's subscription."""

    entity: str
    queue: str | None = None
    topic: str | None = None
    subscription: str | None = None
    requires_session: bool = False
    duplicate_detection_window: timedelta = timedelta(minutes=10)


class ServiceBusConnection:
    """The clients, senders and entity map of one namespace; the adapter's parts build on it."""

    def __init__(
        self,
        namespace: str | None,
        queues: Mapping[str, QueueSpec],
        credential: Callable[[], Any] | None = None,
        *,
        topics: Mapping[str, TopicSpec] | None = None,
        connection_string: str | None = None,
        entity_names: Mapping[str, str] | None = None,
        receive_wait_seconds: float = 5.0,
        client_factory: Callable[[], Any] | None = None,
        admin_factory: Callable[[], Any] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Give `namespace` + `credential` (called once, on first use; returns an async token
        credential the bus then owns), or an emulator `connection_string`. `entity_names` maps a
        catalogue queue, topic or subscription name to its deployed name (default: the same)."""
        if not connection_string and not (namespace and credential):
            raise ValueError("a namespace with a credential, or an emulator connection string, is required")
        self.namespace = namespace
        self._queues = dict(queues)
        self._topics = dict(topics or {})
        self._credential_factory = credential
        self._connection_string = connection_string
        self._deployed = _deployed_entities(self._queues, self._topics, entity_names or {})
        self._receive_wait = receive_wait_seconds
        self._client_factory = client_factory or self._sdk_client
        self._admin_factory = admin_factory or self._sdk_admin_client
        self._now = clock or (lambda: datetime.now(UTC))
        self._credential: Any = None
        self._client: Any = None
        self._admin: Any = None
        self._senders: dict[str, Any] = {}
        self._receivers: dict[str, Any] = {}
        # lock token -> (entity, SDK message, the receiver that must settle it)
        self._locked: dict[str, tuple[str, Any, Any]] = {}
        self._sessions: dict[str, Any] = {}

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

    def _admin_client(self) -> Any:
        if self._admin is None:
            self._admin = self._admin_factory()
        return self._admin

    def _where(self, entity: str) -> Deployed:
        try:
            return self._deployed[entity]
        except KeyError:
            raise KeyError(f"unknown queue, topic or subscription {entity!r}") from None

    def requires_session(self, entity: str) -> bool:
        """Whether receiving from this queue or subscription needs a session (`KeyError` if unknown)."""
        return self._where(entity).requires_session

    def _sender(self, entity: str) -> Any:
        sender = self._senders.get(entity)
        if sender is None:
            where = self._where(entity)
            client = self._bus_client()
            if where.queue is not None:
                sender = client.get_queue_sender(where.queue)
            elif where.topic is not None and where.subscription is None:
                sender = client.get_topic_sender(topic_name=where.topic)
            else:
                raise ValueError(f"{entity} is a subscription: send to its topic")
            self._senders[entity] = sender
        return sender

    async def _discard_sender(self, entity: str) -> None:
        # A sender whose link failed is rebuilt on the next call rather than reused.
        sender = self._senders.pop(entity, None)
        if sender is not None:
            await close_quietly(sender)

    def _new_receiver(self, entity: str, **options: Any) -> Any:
        """A receiver on a queue or subscription (its dead-letter queue with `sub_queue`)."""
        where = self._where(entity)
        client = self._bus_client()
        if where.queue is not None:
            return client.get_queue_receiver(where.queue, **options)
        if where.subscription is None:
            raise ValueError(f"{entity} is a topic: receive from one of its subscriptions")
        return client.get_subscription_receiver(
            topic_name=where.topic, subscription_name=where.subscription, **options
        )

    async def close(self) -> None:
        for resource in [*self._senders.values(), *self._receivers.values(), *self._sessions.values()]:
            await close_quietly(resource)
        self._senders.clear()
        self._receivers.clear()
        self._sessions.clear()
        self._locked.clear()
        for attribute in ("_client", "_admin", "_credential"):
            resource = getattr(self, attribute)
            setattr(self, attribute, None)
            if resource is not None:
                await close_quietly(resource)


def _deployed_entities(
    queues: Mapping[str, QueueSpec], topics: Mapping[str, TopicSpec], names: Mapping[str, str]
) -> dict[str, Deployed]:
    deployed = {
        name: Deployed(
            name, queue=names.get(name, name), duplicate_detection_window=spec.duplicate_detection_window
        )
        for name, spec in queues.items()
    }
    for topic in topics.values():
        topic_name = names.get(topic.name, topic.name)
        deployed[topic.name] = Deployed(
            topic.name, topic=topic_name, duplicate_detection_window=topic.duplicate_detection_window
        )
        for sub in topic.subscriptions:
            path = subscription_entity(topic.name, sub.name)
            deployed[path] = Deployed(
                path,
                topic=topic_name,
                subscription=names.get(path, sub.name),
                requires_session=sub.requires_session,
                duplicate_detection_window=topic.duplicate_detection_window,
            )
    return deployed
