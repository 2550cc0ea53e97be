"""The `patient-conversations` consumer of the `events` topic: a new conversation's first
`conversation.waiting` lists it under its patient (`patient-conversations:<patientId>` in
`lists`), which the unified patient view and `GET /api/me/conversations` read. Other subjects
are acknowledged and ignored (a filtered subscription may take everything for a moment at first
deployment). Idempotent: a redelivery finds the entry and writes nothing."""

from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


@bp.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%EVENTS_TOPIC%",
    subscription_name="%PATIENT_CONVERSATIONS_SUBSCRIPTION%",
    connection="ServiceBusConnection",
)
async def list_patient_conversation(msg: func.ServiceBusMessage) -> None:
    from shared.conversations.api import conversations
    from shared.kernel.messaging import handling
    from shared.runtime import get_runtime

    with handling(msg):
        rt = await get_runtime()
        await conversations.list_from_event(rt.store, json.loads(msg.get_body()))
