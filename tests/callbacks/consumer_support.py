"""What the bot-callback consumer tests share: a conversation escalated with a callback URL and
moved through the API, a stand-in relay that publishes its outbox events to the embedded topic as
the real relay does (`event_message`), the `bot_callbacks` function run over the subscription's
due messages as the host runs a session trigger, and a scripted sender that records deliveries."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.callbacks.api import CallbackState
from shared.kernel.callbacks import CallbackType, DeliveryReason, DeliveryResult
from shared.kernel.catalog import CALLBACKS_SUBSCRIPTION, CONVERSATIONS, EVENTS_TOPIC
from shared.kernel.clock import Clock
from shared.kernel.messages import subscription_entity
from shared.kernel.outbox import event_message
from shared.kernel.stored import Stored
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, registered_functions, token
from tests.routing.support import (
    agent_token,
    deliver,
    events_of,
    functions_message,
    presence,
    put_agent,
    put_queue,
    put_rules,
)

BOT = token("Bot.Escalate", sub="bot-sp-1")
A1 = agent_token("a-1")
CALLBACK_URL = "https://bots.example.org/psc/callbacks?token=t0ken"
CALLBACK_SECRET = "whsec_" + base64.b64encode(b"consumer-test-callback-key-012345").decode()
ENTITY = subscription_entity(EVENTS_TOPIC, CALLBACKS_SUBSCRIPTION)
NOTE = "Internal: the patient sounds anxious, keep it short"


def escalation(bot_conversation_id: str = "chat-cb-1", url: str = CALLBACK_URL) -> dict[str, Any]:
    return {
        "botConversationId": bot_conversation_id,
        "patient": {"id": "p-1"},
        "reason": "Rash",
        "triage": {"urgency": "routine"},
        "transcript": [{"from": "patient", "text": "I have a rash", "timestamp": "2026-01-05T08:59:00Z"}],
        "callback": {"url": url},
    }


def allow_callbacks(runtime: Runtime, hosts: str = "bots.example.org") -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"bot_callback_hosts": hosts, "bot_callback_secret": CALLBACK_SECRET}
    )


async def seed(runtime: Runtime, *, agent_available: bool = True) -> None:
    await runtime.store.container("patients").upsert({"id": "p-1", "type": "patient", "name": "Ann"})
    await put_queue("general", acceptTimeoutSeconds=600, wrapupSeconds=30)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=3, name="Nurse Joy")
    if agent_available:
        await presence("a-1", "available")


async def escalate(body: dict[str, Any]) -> str:
    answer = await invoke("escalate", method="POST", bearer=BOT, json_body=body)
    assert answer.status in (200, 202), answer.json
    return str(answer.json["conversationId"])


async def act(name: str, cid: str, bearer: str = A1, **body: Any) -> Answer:
    answer = await invoke(
        name, method="POST", bearer=bearer, route_params={"conversationId": cid}, json_body=body
    )
    assert answer.status in (200, 201), answer.json
    return answer


async def publish(runtime: Runtime, cid: str) -> int:
    """The relay's part: every outbox event of the conversation to the topic, in order (the topic
    drops what it has seen within its window, as Service Bus does)."""
    events = await events_of(runtime, cid)
    for item in events:
        message = event_message(item)
        assert message is not None
        await runtime.bus.send(EVENTS_TOPIC, message)
    return len(events)


async def run_callbacks(runtime: Runtime, *, rounds: int = 100) -> list[str]:
    """Run `bot_callbacks` over every due message of the subscription, session by session, as the
    host does (complete on success, abandon on failure). Returns the message ids handled."""
    run = callbacks_function()
    bus: Any = runtime.bus
    handled: list[str] = []
    for _ in range(rounds):
        session = await bus.accept_next_session(ENTITY)
        if session is None:
            break
        try:
            while messages := await bus.receive_from_session(session, 10):
                for message in messages:
                    try:
                        await run(functions_message(message))
                    except Exception:
                        await bus.abandon(ENTITY, message.lock_token)
                        raise
                    await bus.complete(ENTITY, message.lock_token)
                    handled.append(message.message_id)
        finally:
            await bus.release_session(session)
    return handled


def callbacks_function() -> Any:
    return registered_functions()["bot_callbacks"].get_user_function()


async def state_of(runtime: Runtime, cid: str) -> CallbackState | None:
    return await Stored(runtime.store, CONVERSATIONS, CallbackState).read_or_none("callbacks", cid)


async def through_routing(runtime: Runtime) -> None:
    await deliver(runtime)


@dataclass
class Delivery:
    url: str
    type: CallbackType
    data: dict[str, Any]
    id: str
    timestamp: datetime
    at: datetime


@dataclass
class ScriptedSender:
    """A `CallbackSender` that records each attempt and answers `outcome(attempt)` (default:
    delivered)."""

    clock: Clock
    failing: DeliveryReason | None = None
    attempts: list[Delivery] = field(default_factory=list)

    async def deliver(
        self,
        url: str,
        event_type: CallbackType,
        data: Mapping[str, Any],
        *,
        message_id: str,
        timestamp: datetime,
    ) -> DeliveryResult:
        self.attempts.append(Delivery(url, event_type, dict(data), message_id, timestamp, self.clock.now()))
        if self.failing is not None:
            return DeliveryResult.failed(self.failing)
        return DeliveryResult(ok=True, reason="delivered", status=204)

    async def close(self) -> None:
        return None

    @property
    def delivered_types(self) -> list[str]:
        return [a.type for a in self.attempts]
