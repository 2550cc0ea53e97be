"""Helpers for routing tests: configure queues and agents through the real admin functions, put
conversations in as the webhook does, and run the `routing` queue function on the embedded bus."""

from __future__ import annotations

from typing import Any

from shared.conversations.model import move, new_conversation
from shared.kernel.documents import Query, where
from shared.kernel.messaging import json_message
from shared.kernel.times import stamp
from shared.routing.model import RoutingAttributes
from shared.runtime import Runtime
from tests.conftest import invoke, registered_functions, stored_items, token

ADMIN = token("Administrator", sub="admin-1")
SUPERVISOR = token("Supervisor", sub="super-1")
BOT = token("Bot.Escalate", sub="bot-1")


def agent_token(agent_id: str) -> str:
    return token("Agent", sub=agent_id)


async def put_queue(queue_id: str, **settings: Any) -> Any:
    answer = await invoke(
        "put_queue",
        method="PUT",
        bearer=ADMIN,
        route_params={"queueId": queue_id},
        json_body={"name": queue_id, **settings},
    )
    assert answer.status in (200, 201), answer.json
    return answer


async def put_rules(rules: list[dict[str, Any]], fallback: str) -> Any:
    answer = await invoke(
        "put_routing_rules",
        method="PUT",
        bearer=ADMIN,
        json_body={"rules": rules, "fallbackQueueId": fallback},
    )
    assert answer.status == 200, answer.json
    return answer


async def put_agent(agent_id: str, *, queues: list[str], capacity: int = 2, **profile: Any) -> Any:
    body = {"name": f"Agent {agent_id}", "queues": queues, "capacity": capacity, **profile}
    answer = await invoke(
        "put_agent", method="PUT", bearer=ADMIN, route_params={"agentId": agent_id}, json_body=body
    )
    assert answer.status in (200, 201), answer.json
    return answer


async def presence(agent_id: str, status: str) -> Any:
    answer = await invoke(
        "put_my_presence", method="PUT", bearer=agent_token(agent_id), json_body={"status": status}
    )
    assert answer.status == 200, answer.json
    return answer


async def enqueue(
    runtime: Runtime,
    conversation_id: str,
    *,
    urgency: str = "routine",
    language: str = "en",
    specialty: str | None = None,
    patient_id: str = "p-1",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the webhook does after authentication: classify, store `waiting` (with its event),
    send the request."""
    from shared.routing.directory import place

    attrs = RoutingAttributes(urgency=urgency, language=language, specialty=specialty, context=context or {})
    placement = await place(runtime.store, attrs)
    now = runtime.clock.now()
    doc = new_conversation(
        conversation_id=conversation_id,
        bot_conversation_id=f"bot-{conversation_id}",
        patient_id=patient_id,
        patient_match="id",
        now=now,
        reason="Needs help",
        summary="Summary for the agent",
        urgency=urgency,
        specialty=specialty,
        language=language,
        context=context or {},
        channel="web",
        locale=language,
        body_format="native",
    )
    from shared.conversations.api import conversations, transcript_messages
    from shared.routing.directory import RoutingDirectory

    settings = await RoutingDirectory(runtime.store).queue(placement.queue_id)
    doc = move(
        doc,
        "queue",
        now,
        queueId=placement.queue_id,
        skills=placement.skills,
        priority=placement.priority,
        queuedAt=stamp(now),
        serviceLevelSeconds=settings.service_level_seconds,
    )
    transcript = [{"from": "patient", "text": "I feel unwell", "timestamp": stamp(now)}]
    first = transcript_messages(conversation_id, patient_id, transcript)
    await conversations.list_live(runtime.store, doc, placement.queue_id)
    stored = (await conversations.create(runtime.store, doc.changed(last_seq=len(first)), first)).body()
    await runtime.bus.send(
        "routing",
        json_message(
            {"kind": "conversation", "conversationId": conversation_id},
            message_id=f"route:{conversation_id}:queued",
            subject="route-conversation",
        ),
    )
    return stored


def functions_message(message: Any) -> Any:
    from devhost.queues import to_functions_message

    return to_functions_message(message)


async def deliver(runtime: Runtime, *, rounds: int = 200, batch: int = 10) -> int:
    """Run the `routing` function over every message that is due, as the host would (complete on
    success, abandon on failure). Returns how many were handled."""
    route = registered_functions()["route"].get_user_function()
    handled = 0
    for _ in range(rounds):
        messages = await runtime.bus.receive("routing", max_messages=batch)  # type: ignore[attr-defined]
        if not messages:
            break
        for message in messages:
            try:
                await route(functions_message(message))
            except Exception:
                await runtime.bus.abandon("routing", message.lock_token)  # type: ignore[attr-defined]
                raise
            await runtime.bus.complete("routing", message.lock_token)  # type: ignore[attr-defined]
            handled += 1
    return handled


async def conversation(runtime: Runtime, conversation_id: str) -> dict[str, Any]:
    return await runtime.store.container("conversations").read(conversation_id, conversation_id)


async def agent(runtime: Runtime, agent_id: str) -> dict[str, Any]:
    return await runtime.store.container("agents").read(agent_id, agent_id)


async def all_items(runtime: Runtime, container: str) -> list[dict[str, Any]]:
    return await stored_items(runtime, container)


async def events_of(runtime: Runtime, conversation_id: str) -> list[dict[str, Any]]:
    """A conversation's outbox events in the order they were written."""
    page = await runtime.store.container("conversations").query(
        Query((where("type", "=", "event"),)), partition_key=conversation_id, max_items=1000
    )
    return sorted(page.items, key=lambda e: (e["version"], e["n"]))


async def messages_of(runtime: Runtime, conversation_id: str) -> list[dict[str, Any]]:
    """A conversation's message documents in seq order (as stored: internal notes too)."""
    page = await runtime.store.container("conversations").query(
        Query((where("type", "=", "message"),)), partition_key=conversation_id, max_items=1000
    )
    return sorted(page.items, key=lambda m: m["seq"])
