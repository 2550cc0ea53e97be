"""What the embedded bus knows about its entities (queues, topics, subscriptions) and what it lets
in: the catalogue resolved into send destinations and receivable entities, and the Service Bus
message and batch size limits.

A destination is what a sender names (a queue or a topic); a receivable is what a receiver names (a
queue or a `topic/subscriptions/sub` path). A queue is both. Sizes: Service Bus counts the whole
encoded message (body, application properties and headers) against 256 KB. We estimate that size
from the fields' UTF-8 lengths plus the AMQP framing measured with the SDK's own encoder
(azure-servicebus 7.15 `PyamqpTransport.get_message_encoded_size`: about 30 bytes per message,
about 10 per application property, 5 per message in a batch); the estimate came out a few bytes
above the real size for every shape we measured, so the embedded bus refuses whatever Service Bus
refuses, and at worst a message within a few dozen bytes of the limit that Service Bus would take.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from shared.kernel.errors import PayloadTooLarge
from shared.kernel.messages import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    OutgoingMessage,
    QueueSpec,
    SubscriptionSpec,
    TopicSpec,
    split_subscription_entity,
    subscription_entity,
)

MAX_MESSAGE_ID_LENGTH = 128
_PROPERTY_TYPES = (str, int, float, bool, type(None))
_MESSAGE_OVERHEAD = 32
_PROPERTY_OVERHEAD = 10
_BATCH_ENTRY_OVERHEAD = 8


@dataclass(frozen=True)
class Receivable:
    """A queue or a subscription: where messages wait to be received."""

    entity: str
    topic: str | None
    lock_duration: timedelta
    max_delivery_count: int
    time_to_live: timedelta
    dead_lettering_on_expiration: bool
    requires_session: bool
    subjects: tuple[str, ...] = ()  # a subscription's filter; empty = every message

    def accepts(self, subject: str | None) -> bool:
        return not self.subjects or subject in self.subjects


@dataclass(frozen=True)
class Destination:
    """A queue or a topic: where senders put messages. A queue routes to itself."""

    name: str
    is_topic: bool
    duplicate_detection_window: timedelta
    routes: tuple[Receivable, ...]


def _queue(spec: QueueSpec) -> Receivable:
    return Receivable(
        entity=spec.name,
        topic=None,
        lock_duration=spec.lock_duration,
        max_delivery_count=spec.max_delivery_count,
        time_to_live=spec.default_message_ttl,
        dead_lettering_on_expiration=spec.dead_lettering_on_expiration,
        requires_session=False,
    )


def _subscription(topic: TopicSpec, spec: SubscriptionSpec) -> Receivable:
    return Receivable(
        entity=subscription_entity(topic.name, spec.name),
        topic=topic.name,
        lock_duration=spec.lock_duration,
        max_delivery_count=spec.max_delivery_count,
        # Service Bus applies the smaller of the topic's and the subscription's default TTL.
        time_to_live=min(topic.default_message_ttl, spec.default_message_ttl),
        dead_lettering_on_expiration=spec.dead_lettering_on_expiration,
        requires_session=spec.requires_session,
        subjects=spec.subjects,
    )


class BusEntities:
    """The catalogue of one embedded bus. Unknown names raise `KeyError` naming the catalogue."""

    def __init__(self, queues: Mapping[str, QueueSpec], topics: Mapping[str, TopicSpec]) -> None:
        clash = set(queues) & set(topics)
        if clash:
            raise ValueError(f"a queue and a topic cannot share a name: {sorted(clash)}")
        self._destinations: dict[str, Destination] = {}
        self._receivables: dict[str, Receivable] = {}
        for spec in queues.values():
            queue = _queue(spec)
            self._receivables[spec.name] = queue
            self._destinations[spec.name] = Destination(
                spec.name, False, spec.duplicate_detection_window, (queue,)
            )
        for topic in topics.values():
            routes = tuple(_subscription(topic, sub) for sub in topic.subscriptions)
            for route in routes:
                self._receivables[route.entity] = route
            self._destinations[topic.name] = Destination(
                topic.name, True, topic.duplicate_detection_window, routes
            )

    def destination(self, name: str) -> Destination:
        try:
            return self._destinations[name]
        except KeyError:
            if name in self._receivables:
                raise ValueError(f"{name} is a subscription: send to its topic") from None
            raise KeyError(
                f"unknown queue or topic {name!r}; add it to the catalogue (QUEUES or TOPICS)"
            ) from None

    def receivable(self, entity: str) -> Receivable:
        try:
            return self._receivables[entity]
        except KeyError:
            kind = "subscription" if split_subscription_entity(entity) else "queue"
            raise KeyError(f"unknown {kind} {entity!r}; add it to the catalogue (QUEUES or TOPICS)") from None

    def topic_of(self, entity: str) -> Destination | None:
        """The topic a subscription entity belongs to (None for a queue)."""
        receivable = self.receivable(entity)
        return self._destinations[receivable.topic] if receivable.topic else None

    def is_topic(self, name: str) -> bool:
        destination = self._destinations.get(name)
        return destination is not None and destination.is_topic


def check_message(message: OutgoingMessage) -> str:
    """Refuse what Service Bus refuses; returns the application properties as stored JSON."""
    if not message.message_id or len(message.message_id) > MAX_MESSAGE_ID_LENGTH:
        raise ValueError(f"message_id must be 1 to {MAX_MESSAGE_ID_LENGTH} characters")
    if not isinstance(message.body, bytes | bytearray | memoryview):
        raise TypeError("message body must be bytes")
    for key, value in message.application_properties.items():
        if not isinstance(key, str) or not isinstance(value, _PROPERTY_TYPES):
            raise TypeError(f"application property {key!r} must map a string to str, int, float or bool")
    if encoded_size(message) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(
            f"The message exceeds the {MAX_MESSAGE_BYTES // 1024} KB Service Bus limit"
            " (body, properties and headers)."
        )
    return json.dumps(message.application_properties, separators=(",", ":"))


def check_batch(messages: Sequence[OutgoingMessage]) -> list[str]:
    properties = [check_message(message) for message in messages]
    total = sum(encoded_size(message) + _BATCH_ENTRY_OVERHEAD for message in messages)
    if total > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"The batch exceeds the {MAX_BATCH_BYTES // 1024} KB Service Bus limit.")
    return properties


def encoded_size(message: OutgoingMessage) -> int:
    """An upper estimate of the message's AMQP size (see the module docstring)."""
    size = len(message.body) + _MESSAGE_OVERHEAD
    for text in (
        message.message_id,
        message.subject,
        message.session_id,
        message.correlation_id,
        message.content_type,
    ):
        if text:
            size += len(text.encode())
    for key, value in message.application_properties.items():
        size += len(key.encode()) + len(str(value).encode()) + _PROPERTY_OVERHEAD
    return size
