"""Message bus on Azure Service Bus queues and topics, through the async SDK.

Implements `MessageBus` (what functions use: send or batch-send to a queue or topic, schedule,
cancel), `DeadLetterAdmin` (what `python -m ops` uses; `servicebus_admin`) and `QueueReceiver` /
`SessionReceiver` (peek-lock receiving for the contract suite and tools; `servicebus_receiving`; in
Azure the Functions host receives for the triggers).

Connection: the namespace (`ServiceBusConnection__fullyQualifiedNamespace`) with the managed identity,
or a connection string only when it is the local emulator's (`UseDevelopmentEmulator=true`).
The client, one sender per entity and the receivers are created on first use and cached
(`servicebus_connection`). Sizes: the SDK refuses a message or batch over the entity's limit
(256 KB on Standard) before sending, which surfaces as `PayloadTooLarge`, as on the embedded bus.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from azure.servicebus.exceptions import MessageNotFoundError

from shared.adapters.azure_credentials import close_quietly
from shared.adapters.servicebus_admin import ServiceBusAdministration
from shared.adapters.servicebus_connection import aware_utc, mapped_errors, to_servicebus_message
from shared.adapters.servicebus_receiving import ServiceBusReceiving
from shared.kernel.errors import Unavailable
from shared.kernel.messages import OutgoingMessage, QueueSpec, TopicSpec, subscription_entity

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["ServiceBusMessageBus", "to_servicebus_message"]


class ServiceBusMessageBus(ServiceBusReceiving, ServiceBusAdministration):
    """Implements `MessageBus`, `QueueReceiver`, `SessionReceiver` and `DeadLetterAdmin`."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        queues: Mapping[str, QueueSpec],
        topics: Mapping[str, TopicSpec] | None = None,
    ) -> ServiceBusMessageBus:
        from shared.adapters.azure_credentials import azure_credential, is_servicebus_emulator_connection
        from shared.config import running_in_azure
        from shared.kernel.errors import ConfigError

        entity_names = deployed_names(queues, topics or {})
        connection: str | None = settings.servicebus_connection
        if connection and not running_in_azure():
            if not is_servicebus_emulator_connection(connection):
                raise ConfigError(
                    "ServiceBusConnection: only the emulator's connection string"
                    " (UseDevelopmentEmulator=true) is accepted; in Azure use"
                    " ServiceBusConnection__fullyQualifiedNamespace with an identity"
                )
            return cls(None, queues, connection_string=connection, entity_names=entity_names, topics=topics)
        if not settings.servicebus_namespace:
            raise ConfigError(
                "ServiceBusConnection__fullyQualifiedNamespace: required when PSC_BUS=servicebus"
            )
        return cls(
            settings.servicebus_namespace,
            queues,
            lambda: azure_credential(settings),
            entity_names=entity_names,
            topics=topics,
        )

    # -- MessageBus -------------------------------------------------------------------------------

    async def send(self, queue: str, message: OutgoingMessage) -> None:
        sender = self._sender(queue)
        try:
            with mapped_errors(queue):
                await sender.send_messages(to_servicebus_message(message))
        except Unavailable:
            await self._discard_sender(queue)
            raise

    async def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        sender = self._sender(queue)
        try:
            with mapped_errors(queue):
                # A list is sent as one batch: all or nothing, refused whole if it does not fit.
                await sender.send_messages([to_servicebus_message(message) for message in messages])
        except Unavailable:
            await self._discard_sender(queue)
            raise

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        when = aware_utc(at)
        sender = self._sender(queue)
        try:
            with mapped_errors(queue):
                sequence_numbers = await sender.schedule_messages(to_servicebus_message(message), when)
        except Unavailable:
            await self._discard_sender(queue)
            raise
        return int(sequence_numbers[0])

    async def cancel_scheduled(self, queue: str, sequence_number: int) -> None:
        sender = self._sender(queue)
        try:
            with mapped_errors(queue):
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
        with mapped_errors(queue):
            receiver = self._new_receiver(queue)
            try:
                await receiver.peek_messages(max_message_count=1)
            finally:
                await close_quietly(receiver)


def deployed_names(queues: Mapping[str, QueueSpec], topics: Mapping[str, TopicSpec]) -> dict[str, str]:
    """Each entity's deployed name, from the app setting its trigger reads (`%SETTING%`; Bicep
    sets them), falling back to the catalogue name."""
    names = {name: os.environ.get(spec.setting) or name for name, spec in queues.items()}
    for topic in topics.values():
        names[topic.name] = os.environ.get(topic.setting) or topic.name
        for sub in topic.subscriptions:
            names[subscription_entity(topic.name, sub.name)] = os.environ.get(sub.setting) or sub.name
    return names
