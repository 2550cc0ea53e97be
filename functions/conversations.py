"""Conversations after escalation: the agent console (presence, my work, accept, decline,
transfer, close), the patient's side leaving (abandon), and the supervisor's live board and
overrides (assign, transfer, force close — all audited). Messages are functions/messages.py.

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

if TYPE_CHECKING:
    from shared.conversations.api import ConversationDocument, Lifecycle
    from shared.routing.api import Transfers

bp = func.Blueprint()
api = Api(bp, tag="conversations")

AGENT = allow(Role.AGENT)
AGENT_OR_SUPERVISOR = allow(Role.AGENT, Role.SUPERVISOR)
SUPERVISOR = allow(Role.SUPERVISOR)
VIEW = "shared.conversations.model:ConversationView"
LIST = "shared.conversations.model:ConversationList"
M = "shared.conversations.model:"


def _lifecycle(call: Call) -> Lifecycle:
    from shared.conversations.api import Lifecycle
    from shared.routing.api import RoutingDirectory

    rt = call.runtime
    # Closing asks the queue's wrap-up time: routing's directory answers (conversations never
    # import routing; this composition wires them).
    return Lifecycle(rt.store, rt.bus, rt.clock, RoutingDirectory(rt.store))


def _transfers(call: Call) -> Transfers:
    from shared.routing.api import Assignment, Transfers

    rt = call.runtime
    return Transfers(Assignment(rt.store, rt.bus, rt.clock))


def _view(doc: ConversationDocument) -> Any:
    from shared.conversations.api import ConversationView

    return ConversationView.model_validate(doc.model_dump(mode="json", by_alias=True, exclude_none=True))


def _answer(doc: ConversationDocument, status: int = 200) -> Reply:
    """A conversation with its ETag (by the stored version: every change is one somebody sees)."""
    from shared.kernel.etags import stored_etag

    return Reply(body=_view(doc), status=status, headers={"ETag": stored_etag(doc)})


@api.route(
    "agents/me/presence",
    "PUT",
    access=AGENT,
    summary="Set my presence",
    body="shared.routing.model:PresenceChange",
    response="shared.routing.model:AgentView",
    errors=(404,),
    if_match=True,
)
async def put_my_presence(call: Call) -> Reply:
    """`available`, `busy`, `dnd`, `away` or `offline`. Routing then adjusts it by load (full →
    dnd, partial → busy, empty → available) but never overrides a chosen away, offline or dnd.
    Answers your agent record with the effective presence; 404 when no agent is registered
    under your id (`GET /api/agents/me` tells it). The ETag versions the presence you chose: send
    it in `If-Match` so that a change made in another of your sessions is not overwritten (412);
    routing's load changes never fail it."""
    from shared.routing.api import Assignment, agent_view, presence_etag

    rt = call.runtime
    doc = await Assignment(rt.store, rt.bus, rt.clock).set_presence(
        call.user.subject, call.body.status, if_match=call.if_match
    )
    return Reply(body=agent_view(doc), headers={"ETag": presence_etag(doc)})


@api.route(
    "agents/me/presence",
    "GET",
    access=AGENT,
    summary="My presence, load and profile",
    response="shared.routing.model:AgentView",
    errors=(404,),
    etag=True,
)
async def get_my_presence(call: Call) -> Reply:
    """What `PUT` answers, with the ETag to send back in its `If-Match`."""
    from shared.kernel.errors import NotFound
    from shared.routing.api import RoutingDirectory, agent_view, presence_etag

    try:
        doc = await RoutingDirectory(call.runtime.store).agent_doc(call.user.subject)
    except NotFound:
        raise NotFound("you are not registered as an agent") from None
    return Reply(body=agent_view(doc), headers={"ETag": presence_etag(doc)})


@api.route(
    "agents/me/conversations",
    "GET",
    access=AGENT,
    summary="My offered, active and wrap-up work",
    response=LIST,
)
async def my_conversations(call: Call) -> Reply:
    """Conversations offered to you (accept or decline them before the offer expires), active
    with you, or in wrap-up after you closed them; oldest first. Their messages (the bot's
    transcript first) come from `GET /api/conversations/{id}/messages`."""
    from shared.conversations.api import ConversationList
    from shared.routing.api import RoutingDirectory, my_conversations

    store = call.runtime.store
    docs = await my_conversations(store, RoutingDirectory(store), call.user)
    return Reply(body=ConversationList(items=[_view(d) for d in docs]))


@api.route(
    "conversations/{conversationId}",
    "GET",
    access=AGENT_OR_SUPERVISOR,
    summary="A conversation with its transcript",
    response=M + "ConversationDetail",
    etag=True,
    errors=(404,),
)
async def get_conversation(call: Call) -> Reply:
    """Agents see the conversations offered or assigned to them; supervisors see all. `transcript`
    holds its first 50 messages in `seq` order (the bot's transcript first, internal notes
    included); when its `next` is not null, `GET …/messages?after=<next>` goes on. Audited."""
    from shared.conversations.api import TRANSCRIPT_PAGE, messages_after
    from shared.kernel.etags import stored_etag

    doc = await _lifecycle(call).get(call.user, call.route("conversationId"), call.correlation_id)
    transcript = await messages_after(call.runtime.store, doc.id, after=None, max_items=TRANSCRIPT_PAGE)
    # The view drops absent fields; `transcript.next` is null on the last page, as `…/messages`
    # answers it, so the transcript joins after the view is dumped.
    body = {**_view(doc).model_dump(mode="json", exclude_none=True), "transcript": transcript}
    return Reply(body=body, headers={"ETag": stored_etag(doc)})


@api.route(
    "conversations/{conversationId}/accept",
    "POST",
    access=AGENT,
    summary="Accept an offered conversation",
    response=VIEW,
    etag=True,
    errors=(404, 409),
)
async def accept_conversation(call: Call) -> Reply:
    """Only the agent it is offered to, before the offer expires (409 otherwise: it went back to
    the queue). It becomes active; accepting it again is 409."""
    return _answer(
        await _lifecycle(call).accept(call.user, call.route("conversationId"), call.correlation_id)
    )


@api.route(
    "conversations/{conversationId}/decline",
    "POST",
    access=AGENT,
    summary="Decline an offered conversation",
    response=VIEW,
    etag=True,
    errors=(404, 409),
)
async def decline_conversation(call: Call) -> Reply:
    """The conversation goes back to its place in the queue; after three declines the agent is
    not offered it again."""
    return _answer(
        await _lifecycle(call).decline(call.user, call.route("conversationId"), call.correlation_id)
    )


@api.route(
    "conversations/{conversationId}/transfer",
    "POST",
    access=AGENT_OR_SUPERVISOR,
    summary="Transfer to a queue or an agent",
    body=M + "TransferRequest",
    response=VIEW,
    etag=True,
    errors=(404, 409, 422),
)
async def transfer_conversation(call: Call) -> Reply:
    """An agent transfers their active conversation; a supervisor any waiting, offered or active
    one, and may override the target agent's presence and capacity."""
    doc = await _transfers(call).transfer(
        call.user,
        call.route("conversationId"),
        queue_id=call.body.queue_id,
        agent_id=call.body.agent_id,
        correlation_id=call.correlation_id,
    )
    return _answer(doc)


@api.route(
    "conversations/{conversationId}/close",
    "POST",
    access=AGENT,
    summary="Close my active conversation with a disposition",
    body=M + "CloseRequest",
    response=VIEW,
    etag=True,
    errors=(404, 409),
)
async def close_conversation(call: Call) -> Reply:
    """Moves to wrap-up; the capacity returns after the queue's wrap-up time, then it is closed."""
    doc = await _lifecycle(call).close(
        call.user, call.route("conversationId"), call.body.disposition, call.correlation_id
    )
    return _answer(doc)


@api.route(
    "conversations/{conversationId}/abandon",
    "POST",
    access=allow(Role.BOT, Role.PATIENT, Role.SUPERVISOR),
    summary="The patient left: end a waiting or offered conversation",
    response=M + "AbandonAnswer",
    errors=(404, 409),
)
async def abandon_conversation(call: Call) -> Reply:
    """For the bot, the patient the conversation is about, or a supervisor. A conversation
    already with an agent (active, wrap-up) or closed is 409. Answers only the id, the status and
    when it was abandoned: no transcript (a patient may call this)."""
    doc = await _lifecycle(call).abandon(call.user, call.route("conversationId"), call.correlation_id)
    return Reply(body={"id": doc.id, "status": str(doc.status), "abandonedAt": doc.abandoned_at})


@api.route(
    "supervisor/conversations",
    "GET",
    access=SUPERVISOR,
    summary="Live board: conversations, queue depth and longest wait, agents with presence and load",
    query="shared.routing.model:BoardQuery",
    response="shared.routing.model:Board",
    errors=(400,),
)
async def supervisor_board(call: Call) -> Reply:
    """`status` filters (comma-separated live statuses: open, waiting, offered, active, wrapup).
    Conversations come queue by queue in priority order, each queue's oldest first; `queues`
    gives every queue's depth and longest wait; `agents` lists agents by id with presence and
    load. Paged with `maxItems` (each of `items` and `agents`) and `continuationToken`. No PHI:
    ids and routing attributes only.
    A waiting row carries `"outOfHours": true` when its queue is closed by its operating hours,
    else `"unassignable": {"reason": …}` when no agent of its queue may ever take it as things
    stand (all excluded by declines, nobody with its language, capacity or required skills, or
    nobody in the queue); a conversation whose agents are merely busy or offline carries neither."""
    from shared.kernel.errors import ValidationFailed

    try:
        statuses = call.query.statuses()
    except ValueError as error:
        raise ValidationFailed([{"field": "query.status", "message": str(error)}]) from None
    from shared.routing.api import RoutingDirectory, SupervisorBoard

    rt = call.runtime
    board = await SupervisorBoard(rt.store, rt.clock, RoutingDirectory(rt.store)).page(
        statuses, call.query.max_items, call.query.continuation_token
    )
    return Reply(body=board)


@api.route(
    "supervisor/conversations/{conversationId}/assign",
    "POST",
    access=SUPERVISOR,
    summary="Assign a waiting conversation to an agent (overrides presence and capacity)",
    body=M + "AssignRequest",
    response=VIEW,
    etag=True,
    errors=(400, 404, 409, 422),
)
async def supervisor_assign(call: Call) -> Reply:
    """The conversation must be waiting (409 otherwise); the agent must exist (422) and is
    offered it even when away or full. Audited."""
    doc = await _transfers(call).assign(
        call.user, call.route("conversationId"), call.body.agent_id, call.correlation_id
    )
    return _answer(doc)


@api.route(
    "supervisor/conversations/{conversationId}/close",
    "POST",
    access=SUPERVISOR,
    summary="Force close a live conversation",
    body=M + "ForceCloseRequest",
    response=VIEW,
    etag=True,
    errors=(404, 409),
)
async def supervisor_force_close(call: Call) -> Reply:
    """Ends any live conversation at once (no wrap-up), with an optional reason; a closed one is
    409. The agent's capacity is released. Audited."""
    doc = await _lifecycle(call).force_close(
        call.user, call.route("conversationId"), call.body.reason, call.correlation_id
    )
    return _answer(doc)
