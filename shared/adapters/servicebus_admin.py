"""Dead-letter administration on Service Bus (`DeadLetterAdmin`, what `python -m ops` uses) for
queues and subscriptions (`topic/subscriptions/sub`); depths also for topics, where scheduled
messages wait.

Resubmission: Service Bus cannot fetch a dead-lettered message by sequence number for settlement
(only deferred messages can be). We peek first (no lock, no cost) to learn whether the message
exists, then receive from the dead-letter sub-queue in peek-lock batches until we meet it, holding
the locks of the others, send a copy back, complete the dead-lettered original and abandon the
rest. The cost is one receive per message ahead of it in the dead-letter queue (each bumps that
message's delivery count, which means nothing in a dead-letter queue) and the scan must finish
inside the lock duration; resubmitting many at once scans once (`resubmit_dead_letters`). A queue's
dead letter goes back to the queue; a subscription's to its topic (Service Bus cannot send to one
subscription), so every subscription whose rules accept it gets a copy again.

The dead-letter queue of a session-enabled subscription is read with an ordinary receiver.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.servicebus import ServiceBusSubQueue

from shared.adapters.azure_credentials import close_quietly
from shared.adapters.servicebus_connection import (
    ServiceBusConnection,
    as_utc,
    body_of,
    copy_for_resubmit,
    mapped_errors,
    properties_of,
)
from shared.kernel.errors import AccessDenied, Conflict, NotFound, Unavailable
from shared.kernel.messages import DeadLetteredMessage, QueueDepth

log = logging.getLogger("shared.adapters.servicebus_bus")

_SCAN_BATCH = 50
_SCAN_WAIT_SECONDS = 5.0
_PEEK_BATCH = 100


def _dead_lettered(message: Any) -> DeadLetteredMessage:
    return DeadLetteredMessage(
        body=body_of(message),
        message_id=str(message.message_id),
        sequence_number=int(message.sequence_number),
        delivery_count=int(message.delivery_count or 0),
        enqueued_time=as_utc(message.enqueued_time_utc),
        reason=message.dead_letter_reason or "",
        description=message.dead_letter_error_description,
        subject=message.subject,
        application_properties=properties_of(message),
        correlation_id=message.correlation_id,
        session_id=message.session_id,
    )


class ServiceBusAdministration(ServiceBusConnection):
    """`DeadLetterAdmin` on Service Bus queues, topics and subscriptions."""

    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        return [await self._depth(entity) for entity in queues]

    async def _depth(self, entity: str) -> QueueDepth:
        where = self._where(entity)
        admin = self._admin_client()
        with mapped_errors(entity):
            try:
                if where.queue is not None:
                    props = await admin.get_queue_runtime_properties(where.queue)
                    return QueueDepth(
                        entity,
                        active=int(props.active_message_count or 0),
                        scheduled=int(props.scheduled_message_count or 0),
                        dead_letter=int(props.dead_letter_message_count or 0),
                    )
                if where.subscription is None:
                    props = await admin.get_topic_runtime_properties(where.topic)
                    return QueueDepth(
                        entity, active=0, scheduled=int(props.scheduled_message_count or 0), dead_letter=0
                    )
                props = await admin.get_subscription_runtime_properties(where.topic, where.subscription)
                return QueueDepth(
                    entity,
                    active=int(props.active_message_count or 0),
                    scheduled=0,
                    dead_letter=int(props.dead_letter_message_count or 0),
                )
            except ResourceNotFoundError as exc:
                raise Unavailable(f"{entity} is not provisioned.") from exc
            except HttpResponseError as exc:
                # 401 "Manage,EntityRead claims required": Sender/Receiver roles lack Manage.
                # A credential that got no token at all has no status code and is not this.
                if exc.status_code in (401, 403):
                    refused = "Service Bus refused the management call."
                    raise AccessDenied(refused, right="Manage", resource=self.namespace) from exc
                raise Unavailable("The message bus cannot be reached.") from exc
            except AzureError as exc:
                raise Unavailable("The message bus cannot be reached.") from exc

    def _dead_letter_receiver(self, entity: str) -> Any:
        return self._new_receiver(entity, sub_queue=ServiceBusSubQueue.DEAD_LETTER)

    def _resubmit_target(self, entity: str) -> str:
        where = self._where(entity)
        if where.subscription is None:
            return entity
        return next(
            name for name, d in self._deployed.items() if d.topic == where.topic and not d.subscription
        )

    async def peek_dead_letters(self, queue: str, max_messages: int = 50) -> list[DeadLetteredMessage]:
        # A fresh receiver each time: a receiver's peek cursor moves on, ours must start at the front.
        receiver = self._dead_letter_receiver(queue)
        found: list[DeadLetteredMessage] = []
        try:
            with mapped_errors(queue):
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
        numbers resubmitted. Refuses (Conflict) a message still inside the duplicate-detection
        window of the queue or topic it goes back to: Service Bus would drop the copy silently,
        since it keeps the original's message id."""
        wanted = None if sequence_numbers is None else set(sequence_numbers)
        if wanted is not None:
            await self._check_resubmittable(queue, wanted)
        receiver = self._dead_letter_receiver(queue)
        sender = self._sender(self._resubmit_target(queue))
        held: list[Any] = []
        seen: set[int] = set()
        done: list[int] = []
        try:
            with mapped_errors(queue):
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
                        if wanted is None and self._duplicate_window_end(queue, message.enqueued_time_utc):
                            held.append(message)
                            continue
                        await sender.send_messages(copy_for_resubmit(message))
                        await receiver.complete_message(message)
                        done.append(sequence)
                        log.info(
                            "dead letter resubmitted", extra={"queue": queue, "sequence_number": sequence}
                        )
        finally:
            for message in held:
                with contextlib.suppress(Exception):
                    await receiver.abandon_message(message)
            await close_quietly(receiver)
        return done

    async def _check_resubmittable(self, queue: str, wanted: set[int]) -> None:
        receiver = self._dead_letter_receiver(queue)
        try:
            with mapped_errors(queue):
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

    def _duplicate_window_end(self, entity: str, enqueued: datetime | None) -> datetime | None:
        end = as_utc(enqueued) + self._where(entity).duplicate_detection_window
        return end if end > self._now() else None
