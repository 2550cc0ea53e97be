"""Peek-lock receiving on Service Bus queues and subscriptions, with and without sessions: the
`QueueReceiver` and `SessionReceiver` ports (the contract suite and tools use them; in Azure the
Functions host receives for triggers).

Service Bus has no session lock token: a session is the receiver that accepted it, so the adapter
hands out its own token for each accepted session and keeps the receiver behind it. Messages are
settled through the receiver that received them (a session message only through its session's).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from azure.servicebus import NEXT_AVAILABLE_SESSION
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    OperationTimeoutError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from shared.adapters.azure_credentials import close_quietly
from shared.adapters.servicebus_connection import (
    ServiceBusConnection,
    as_utc,
    body_of,
    mapped_errors,
    properties_of,
)
from shared.kernel.messages import MessageLockLost, ReceivedMessage, SessionLock, SessionLockLost


def _received(message: Any) -> ReceivedMessage:
    return ReceivedMessage(
        body=body_of(message),
        message_id=str(message.message_id),
        sequence_number=int(message.sequence_number),
        delivery_count=int(message.delivery_count or 0),
        enqueued_time=as_utc(message.enqueued_time_utc),
        lock_token=str(message.lock_token),
        locked_until=as_utc(message.locked_until_utc),
        subject=message.subject,
        application_properties=properties_of(message),
        session_id=message.session_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        scheduled_enqueue_time=message.scheduled_enqueue_time_utc,
    )


class ServiceBusReceiving(ServiceBusConnection):
    """`QueueReceiver` and `SessionReceiver` on Service Bus."""

    # -- QueueReceiver ----------------------------------------------------------------------------

    def _receiver(self, entity: str) -> Any:
        if self._where(entity).requires_session:
            raise ValueError(f"{entity} requires sessions: accept a session to receive from it")
        receiver = self._receivers.get(entity)
        if receiver is None:
            receiver = self._receivers[entity] = self._new_receiver(entity)
        return receiver

    async def receive(self, queue: str, max_messages: int = 1) -> list[ReceivedMessage]:
        receiver = self._receiver(queue)
        with mapped_errors(queue):
            messages = await receiver.receive_messages(
                max_message_count=max_messages, max_wait_time=self._receive_wait
            )
        return [self._hold(queue, message, receiver) for message in messages]

    def _hold(self, entity: str, message: Any, receiver: Any) -> ReceivedMessage:
        received = _received(message)
        self._locked[received.lock_token] = (entity, message, receiver)
        return received

    async def _settle(self, queue: str, lock_token: str, action: str, **kwargs: Any) -> Any:
        held = self._locked.get(lock_token)
        if held is None or held[0] != queue:
            raise MessageLockLost("the lock is unknown, expired or already settled")
        _, message, receiver = held
        with mapped_errors(queue):
            try:
                result = await getattr(receiver, action)(message, **kwargs)
            except SessionLockLostError:
                self._locked.pop(lock_token, None)
                raise SessionLockLost("the session lock expired or was released") from None
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
        if self._where(queue).requires_session:
            raise TypeError(
                "Renewing a message lock is invalid with sessions: renew the session lock instead."
            )
        return as_utc(await self._settle(queue, lock_token, "renew_message_lock"))

    async def dead_letter(
        self, queue: str, lock_token: str, reason: str, description: str | None = None
    ) -> None:
        await self._settle(
            queue, lock_token, "dead_letter_message", reason=reason, error_description=description
        )

    # -- SessionReceiver ----------------------------------------------------------------------------

    async def accept_next_session(self, entity: str) -> SessionLock | None:
        if not self._where(entity).requires_session:
            raise ValueError(f"{entity} does not require sessions: receive from it without one")
        receiver = self._new_receiver(
            entity, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=self._receive_wait
        )
        try:
            with mapped_errors(entity):
                try:
                    await receiver.__aenter__()  # links to the next session nobody holds
                except (OperationTimeoutError, SessionCannotBeLockedError):
                    await close_quietly(receiver)
                    return None  # no session free within the wait
        except Exception:
            await close_quietly(receiver)
            raise
        token = str(uuid.uuid4())
        self._sessions[token] = receiver
        session = receiver.session
        return SessionLock(entity, str(session.session_id), token, as_utc(session.locked_until_utc))

    def _session_receiver(self, session: SessionLock) -> Any:
        receiver = self._sessions.get(session.lock_token)
        if receiver is None:
            raise SessionLockLost(f"session {session.session_id} of {session.entity} is not held here")
        return receiver

    async def receive_from_session(
        self, session: SessionLock, max_messages: int = 1
    ) -> list[ReceivedMessage]:
        receiver = self._session_receiver(session)
        with mapped_errors(session.entity):
            try:
                messages = await receiver.receive_messages(
                    max_message_count=max_messages, max_wait_time=self._receive_wait
                )
            except SessionLockLostError:
                await self.release_session(session)
                raise SessionLockLost(f"the lock on session {session.session_id} is lost") from None
        return [self._hold(session.entity, message, receiver) for message in messages]

    async def renew_session_lock(self, session: SessionLock) -> SessionLock:
        receiver = self._session_receiver(session)
        with mapped_errors(session.entity):
            try:
                until = await receiver.session.renew_lock()
            except SessionLockLostError:
                await self.release_session(session)
                raise SessionLockLost(f"the lock on session {session.session_id} is lost") from None
        return SessionLock(session.entity, session.session_id, session.lock_token, as_utc(until))

    async def release_session(self, session: SessionLock) -> None:
        receiver = self._sessions.pop(session.lock_token, None)
        if receiver is None:
            return
        for token in [t for t, (_, _, r) in self._locked.items() if r is receiver]:
            del self._locked[token]
        await close_quietly(receiver)
