"""Messages of a conversation (PRODUCT.md *Messages*): staff read and write everything (`internal`
notes too), the patient their own conversations' patient-visible messages, and the bot relays the
patient's messages and their leaving. Services and models load with the first call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import EXTERNAL_ID_PARAM, Api, Call, Reply, allow

if TYPE_CHECKING:
    from shared.conversations.api import MessageDocument, Messages

bp = func.Blueprint()
api = Api(bp, tag="messages")

STAFF = allow(Role.AGENT, Role.SUPERVISOR)
PATIENT = allow(Role.PATIENT)
BOT = allow(Role.BOT, signed_webhook=True)
BOT_CONVERSATION = {"botConversationId": EXTERNAL_ID_PARAM}
M = "shared.conversations.model:"
REPLAYED = ((200, "The same sender's id again: the first message, unchanged"),)


def _messages(call: Call) -> Messages:
    from shared.conversations.api import Messages

    return Messages(call.runtime.store, call.runtime.clock)


def _written(message: MessageDocument, created: bool) -> Reply:
    return Reply(body=message.view(), status=201 if created else 200)


# Staff -------------------------------------------------------------------------------------------


@api.route(
    "conversations/{conversationId}/messages",
    "POST",
    access=STAFF,
    summary="Write a message to the patient, or an internal note",
    body=M + "MessageRequest",
    response=M + "MessageView",
    status=201,
    also=REPLAYED,
    errors=(404, 409),
)
async def send_message(call: Call) -> Reply:
    """The agent the conversation is assigned to (while it is active or in wrap-up) or a
    supervisor (until it is closed: 409). `visibility` `internal` is a note between staff the
    patient and the bot never see. With your own `id`, sending the same message again stores it
    once and answers the first (200)."""
    body = call.body
    message, created = await _messages(call).post(
        call.user,
        call.route("conversationId"),
        side="staff",
        text=body.text,
        visibility=body.visibility,
        client_id=body.id,
        correlation_id=call.correlation_id,
    )
    return _written(message, created)


@api.route(
    "conversations/{conversationId}/messages",
    "GET",
    access=STAFF,
    summary="A conversation's messages, internal notes included",
    query=M + "MessagesQuery",
    response=M + "MessagePage",
    errors=(404,),
)
async def read_messages(call: Call) -> Reply:
    """In `seq` order (the bot's transcript first), `maxItems` at a time after `after`; pass
    `next` as `after` for the next page (null: none now). The agent it is assigned to, or a
    supervisor; audited."""
    page = await _messages(call).page(
        call.user,
        call.route("conversationId"),
        side="staff",
        after=call.query.after,
        max_items=call.query.max_items,
        correlation_id=call.correlation_id,
    )
    return Reply(body=page)


# The patient -------------------------------------------------------------------------------------


@api.route(
    "me/conversations",
    "GET",
    access=PATIENT,
    summary="My conversations, newest first",
    query=M + "PatientConversationsQuery",
    response=M + "PatientConversationList",
)
async def list_my_conversations(call: Call) -> Reply:
    """Your conversations as `GET /api/me/conversations/{id}` shows each, newest first; paged
    with `maxItems` and `continuationToken` (absent on the last page; a page may hold fewer items
    than asked). A conversation appears once the service has taken it in, within seconds of the
    escalation. Audited."""
    from shared.conversations.api import PatientConversationList, PatientConversationView

    call.own_patient_id()
    docs, token = await _messages(call).mine(
        call.user,
        max_items=call.query.max_items,
        token=call.query.continuation_token,
        correlation_id=call.correlation_id,
    )
    items = [PatientConversationView.model_validate(doc.body()) for doc in docs]
    return Reply(body=PatientConversationList(items=items, continuationToken=token))


@api.route(
    "me/conversations/{conversationId}",
    "GET",
    access=PATIENT,
    summary="One of my conversations",
    response=M + "PatientConversationView",
    errors=(404,),
    etag=True,
)
async def my_conversation(call: Call) -> Reply:
    """Where your conversation stands (another patient's answers 404). Audited."""
    from shared.conversations.api import PatientConversationView
    from shared.kernel.etags import stored_etag

    call.own_patient_id()
    doc = await _messages(call).conversation(
        call.user, call.route("conversationId"), side="patient", correlation_id=call.correlation_id
    )
    return Reply(body=PatientConversationView.model_validate(doc.body()), headers={"ETag": stored_etag(doc)})


@api.route(
    "me/conversations/{conversationId}/messages",
    "GET",
    access=PATIENT,
    summary="My conversation's messages",
    query=M + "MessagesQuery",
    response=M + "MessagePage",
    errors=(404,),
)
async def my_messages(call: Call) -> Reply:
    """The messages you may see (never staff's internal notes), in `seq` order after `after`."""
    call.own_patient_id()
    page = await _messages(call).page(
        call.user,
        call.route("conversationId"),
        side="patient",
        after=call.query.after,
        max_items=call.query.max_items,
        correlation_id=call.correlation_id,
    )
    return Reply(body=page)


@api.route(
    "me/conversations/{conversationId}/messages",
    "POST",
    access=PATIENT,
    summary="Write in my conversation",
    body=M + "PatientMessageRequest",
    response=M + "MessageView",
    status=201,
    also=REPLAYED,
    errors=(404, 409),
)
async def send_my_message(call: Call) -> Reply:
    """While the conversation is not closed (409 then). With your own `id`, sending the same
    message again stores it once and answers the first (200)."""
    call.own_patient_id()
    message, created = await _messages(call).post(
        call.user,
        call.route("conversationId"),
        side="patient",
        text=call.body.text,
        client_id=call.body.id,
        correlation_id=call.correlation_id,
    )
    return _written(message, created)


# The bot -----------------------------------------------------------------------------------------


@api.route(
    "bot/conversations/{botConversationId}/messages",
    "POST",
    access=BOT,
    summary="Relay the patient's message",
    body=M + "BotMessageRequest",
    response=M + "MessageView",
    status=201,
    also=REPLAYED,
    errors=(404, 409),
    params=BOT_CONVERSATION,
)
async def bot_message(call: Call) -> Reply:
    """Authenticated as the escalation webhook (bearer with `Bot.Escalate`, or a Standard
    Webhooks signature). The path names your conversation as you escalated it (percent-encoded);
    the message goes to its current human conversation (404: none; 409: closed), as the
    patient's. `id` is required: the same `id` again answers the first message (200)."""
    from shared.conversations.api import bot_scope, current_conversation

    doc = await current_conversation(call.runtime.store, call.user, call.route("botConversationId"))
    message, created = await _messages(call).post(
        call.user,
        doc.id,
        side="bot",
        text=call.body.text,
        client_id=call.body.id,
        sender=bot_scope(call.user),
        correlation_id=call.correlation_id,
    )
    return _written(message, created)


@api.route(
    "bot/conversations/{botConversationId}/end",
    "POST",
    access=BOT,
    summary="The patient left",
    response=M + "EndAnswer",
    errors=(404, 409),
    params=BOT_CONVERSATION,
)
async def bot_end(call: Call) -> Reply:
    """Waiting or offered: closed with `endReason` `abandoned` (as `/abandon`); active: wrap-up
    with `endReason` `patient-left` (the agent finishes, then it closes). Already in wrap-up or
    closed: answered as it is, so a repeated notice changes nothing."""
    from shared.conversations.api import Lifecycle, current_conversation
    from shared.routing.api import RoutingDirectory

    rt = call.runtime
    doc = await current_conversation(rt.store, call.user, call.route("botConversationId"))
    ended = await Lifecycle(rt.store, rt.bus, rt.clock, RoutingDirectory(rt.store)).patient_left(
        call.user, doc.id, call.correlation_id
    )
    return Reply(
        body={"conversationId": ended.id, "status": str(ended.status), "endReason": ended.end_reason}
    )
