"""What the workspace, knowledge and consult tests stand on: patients, agents, queues and a
conversation held by an agent, written through the API or as the escalation webhook stores them."""

from __future__ import annotations

from typing import Any

from shared.conversations.model import ConversationDocument, Status, new_conversation
from shared.runtime import Runtime
from tests.conftest import invoke, token

ADMIN = token("Administrator", sub="admin-1")
AGENT_ID = "agent-7"
AGENT = token("Agent", sub=AGENT_ID, name="Alex Agent")
OTHER_AGENT = token("Agent", sub="agent-8")
SUPERVISOR = token("Supervisor", sub="super-1")
KNOWLEDGE = token("KnowledgeManager", sub="km-1")
INTEGRATION = token("IntegrationAdmin", sub="ia-1")


async def put_patient(patient_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Anna Maria Kowalska", **fields}
    answer = await invoke(
        "put_patient",
        method="PUT",
        bearer=token("Administrator", "ClinicalUser", sub="admin-1"),
        json_body=body,
        route_params={"patientId": patient_id},
    )
    assert answer.status in (200, 201), answer.json
    result: dict[str, Any] = answer.json
    return result


async def put_agent(
    agent_id: str = AGENT_ID, name: str = "Alex Agent", queues: list[str] | None = None
) -> None:
    answer = await invoke(
        "put_agent",
        method="PUT",
        bearer=ADMIN,
        json_body={"name": name, "queues": queues or [], "languages": ["en"]},
        route_params={"agentId": agent_id},
    )
    assert answer.status in (200, 201), answer.json


async def put_queue(queue_id: str = "general", name: str = "General questions") -> None:
    answer = await invoke(
        "put_queue", method="PUT", bearer=ADMIN, json_body={"name": name}, route_params={"queueId": queue_id}
    )
    assert answer.status in (200, 201), answer.json


async def held_conversation(
    runtime: Runtime,
    conversation_id: str,
    patient_id: str,
    *,
    agent_id: str | None = AGENT_ID,
    status: Status = Status.ACTIVE,
    queue_id: str = "general",
    reason: str | None = "Cannot sign in to the portal, forgot my password",
    language: str = "en",
    urgency: str = "routine",
    specialty: str | None = None,
) -> ConversationDocument:
    """A conversation as routing leaves it once an agent accepted it."""
    doc = new_conversation(
        conversation_id=conversation_id,
        bot_conversation_id=f"bot-{conversation_id}",
        patient_id=patient_id,
        patient_match="id",
        now=runtime.clock.now(),
        reason=reason,
        summary=None,
        urgency=urgency,
        specialty=specialty,
        language=language,
        context={},
        channel=None,
        locale=None,
        body_format="native",
    ).changed(status=status, agent_id=agent_id, queue_id=queue_id)
    await runtime.store.container("conversations").upsert(doc.body())
    return doc


async def all_items(runtime: Runtime, container: str) -> list[dict[str, Any]]:
    from shared.kernel.documents import Query

    page = await runtime.store.container(container).query_cross_partition(Query(), max_items=5000)
    return sorted(page.items, key=lambda item: (str(item.get("id")), str(item.get("_etag"))))


async def deliver_patient_lists(runtime: Runtime) -> int:
    """The relay and the `patient-conversations` subscription in-process: every event document of
    `conversations` the subscription's rules let in goes through the consumer function, as the topic
    would deliver it. Returns how many were delivered (a second call delivers them again)."""
    from azure.functions.servicebus import ServiceBusMessage

    from shared.kernel.catalog import EVENT_SUBSCRIPTIONS
    from shared.kernel.documents import Query, where
    from shared.kernel.outbox import event_message
    from tests.conftest import registered_functions

    (spec,) = [s for s in EVENT_SUBSCRIPTIONS if s.name == "patient-conversations"]
    consume = registered_functions()["list_patient_conversation"].get_user_function()
    page = await runtime.store.container("conversations").query_cross_partition(
        Query((where("type", "=", "event"),)), max_items=5000
    )
    delivered = 0
    for item in sorted(page.items, key=lambda i: (i["aggregateId"], i["version"], i["n"])):
        message = event_message(item)
        if message is None or not spec.accepts(message.subject):
            continue
        await consume(
            ServiceBusMessage(
                body=message.body,
                message_id=message.message_id,
                session_id=message.session_id,
                subject=message.subject,
                label=message.subject,
                application_properties={},
                user_properties={},
            )
        )
        delivered += 1
    return delivered
