"""Transcripts of closed conversations: the `transcripts` consumer of the `events` topic archives
each one once when it closes (and starts its messages' retention), and staff read it back.
Services and models load with the first call."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

bp = func.Blueprint()
api = Api(bp, tag="conversations")
log = logging.getLogger("psc.transcripts")

CLOSED = "conversation.closed"


@bp.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%EVENTS_TOPIC%",
    subscription_name="%TRANSCRIPTS_SUBSCRIPTION%",
    connection="ServiceBusConnection",
)
async def archive_transcript(msg: func.ServiceBusMessage) -> None:
    """`conversation.closed`: archive the transcript, then start the messages' retention. Other
    subjects are acknowledged unread (a filtered subscription may briefly take everything at first
    deployment). A redelivery finds `archivedAt` and changes nothing; an exception abandons the
    message (redelivered, then dead-lettered)."""
    from shared.kernel.messaging import handling

    with handling(msg):
        envelope = json.loads(msg.get_body())
        if envelope.get("type") != CLOSED:
            return
        from shared.conversations.api import Transcripts
        from shared.runtime import get_runtime

        rt = await get_runtime()
        transcripts = Transcripts(rt.store, rt.transcripts, rt.clock, rt.settings.message_retention_days)
        outcome = await transcripts.archive(str(envelope["aggregateId"]))
        log.info("transcript event", extra={"conversation_id": envelope["aggregateId"], "outcome": outcome})


@api.route(
    "conversations/{conversationId}/transcript",
    "GET",
    access=allow(Role.SUPERVISOR, Role.AGENT),
    summary="A closed conversation's archived transcript",
    response="shared.conversations.transcripts:TranscriptView",
    errors=(404,),
)
async def read_transcript(call: Call) -> Reply:
    """The transcript archived when the conversation closed: the conversation with its stamps and
    lifecycle history, and every message with its author, visibility and time (internal notes
    included). For supervisors and the agents who handled the conversation; anyone else, and a
    conversation not closed and archived yet, is 404. It stays readable after the live messages
    have expired (PSC_MESSAGE_RETENTION_DAYS after the archive). Audited."""
    from shared.conversations.api import Transcripts

    rt = call.runtime
    transcripts = Transcripts(rt.store, rt.transcripts, rt.clock, rt.settings.message_retention_days)
    return Reply(body=await transcripts.read(call.user, call.route("conversationId"), call.correlation_id))
