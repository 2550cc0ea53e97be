"""Teams consults: teams (IntegrationAdmin), an agent's consult of a provider's team, the
providers' replies from Teams (signed by the team's outgoing webhook) and the consult sweep.

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import PUBLIC, Api, Call, Reply, allow
from shared.web.headers import TEAMS_SIGNATURE

if TYPE_CHECKING:
    from shared.consults.api import Consults, ReplyIntake, Teams

bp = func.Blueprint()
api = Api(bp, tag="consults")
log = logging.getLogger("psc.consults")

M = "shared.consults.model:"


def _teams(call_runtime: object) -> Teams:
    from shared.consults.api import Teams, WorkflowUrlPolicy
    from shared.runtime import Runtime

    assert isinstance(call_runtime, Runtime)
    rt = call_runtime
    return Teams(
        rt.store,
        rt.secrets,
        rt.clock,
        WorkflowUrlPolicy.from_settings(rt.settings),
        rt.settings.teams_outgoing_token,
    )


def _consults(call: Call) -> Consults:
    from shared.consults.api import Consults

    rt = call.runtime
    return Consults(rt.store, rt.bus, rt.clock, _teams(rt), rt.workflows)


def _intake(call_runtime: object) -> ReplyIntake:
    from shared.consults.api import ReplyIntake
    from shared.runtime import Runtime

    assert isinstance(call_runtime, Runtime)
    return ReplyIntake(call_runtime.store, call_runtime.bus, call_runtime.clock, _teams(call_runtime))


async def _audit(call: Call, action: str, resource: str) -> None:
    from shared.audit.api import record_access

    await record_access(
        call.runtime.store,
        call.runtime.clock,
        actor=call.user,
        action=action,  # type: ignore[arg-type]
        resource=resource,
        patient_id=None,
        correlation_id=call.correlation_id,
    )


@api.route(
    "manage/teams/{teamId}",
    "PUT",
    access=allow(Role.INTEGRATION_ADMIN),
    summary="Create or change a Teams team for consults",
    body=M + "TeamRequest",
    response=M + "TeamView",
    errors=(422,),
    also=((201, "Created"),),
    if_match=True,
)
async def put_team(call: Call) -> Reply:
    """`workflowUrl`: the channel's Workflows webhook URL (Power Automate's "When a Teams webhook
    request is received"); `outgoingToken`: the security token Teams showed for the team's
    outgoing webhook (replies). Both are kept as secrets (Key Vault) and never returned; leave one
    out to keep the stored one. `providerIds`: whose consults go to this team."""
    from shared.kernel.etags import entity_tag

    teams = _teams(call.runtime)
    team_id = call.route("teamId")
    doc, created = await teams.put(call.user, team_id, call.body, if_match=call.if_match)
    await _audit(call, "create" if created else "update", f"manage/teams/{team_id}")
    return Reply(body=teams.view(doc), status=201 if created else 200, headers={"ETag": entity_tag(doc.etag)})


@api.route(
    "manage/teams/{teamId}",
    "GET",
    access=allow(Role.INTEGRATION_ADMIN),
    summary="Read a team (never its secrets)",
    response=M + "TeamView",
    errors=(404,),
    etag=True,
)
async def get_team(call: Call) -> Reply:
    """The Workflows URL's host and which token checks replies, never the URL or the token."""
    from shared.kernel.etags import entity_tag

    teams = _teams(call.runtime)
    doc = await teams.get(call.route("teamId"))
    return Reply(body=teams.view(doc), headers={"ETag": entity_tag(doc.etag)})


@api.route(
    "conversations/{conversationId}/consults",
    "POST",
    access=allow(Role.AGENT),
    summary="Consult a provider's team in Teams",
    body=M + "ConsultRequest",
    response=M + "Consult",
    status=201,
    errors=(404, 409, 422, 503),
)
async def create_consult(call: Call) -> Reply:
    """The assigned agent of an active (or wrapping-up) conversation. Posts an Adaptive Card to
    the team's channel with a reference code (`XXXX-XXXX`) and the question, never the patient's
    name, date of birth or contact details (a question holding them is refused). A provider
    answers in the channel by @mentioning the outgoing webhook with the code. 503 when Teams did
    not take the card (nothing is kept)."""
    from shared.consults.api import consult_view

    doc = await _consults(call).create(
        call.user, call.route("conversationId"), call.body, call.correlation_id
    )
    return Reply(body=consult_view(doc), status=201)


@api.route(
    "conversations/{conversationId}/consults/{consultId}",
    "GET",
    access=allow(Role.AGENT, Role.SUPERVISOR),
    summary="Read a consult and its replies",
    response=M + "Consult",
    errors=(404,),
    etag=True,
)
async def get_consult(call: Call) -> Reply:
    """Status (`sent`, `answered`, `expired`) and the providers' replies. The assigned agent or a
    supervisor; audited."""
    from shared.consults.api import consult_view
    from shared.kernel.etags import stored_etag

    doc = await _consults(call).read(
        call.user, call.route("conversationId"), call.route("consultId"), call.correlation_id
    )
    return Reply(body=consult_view(doc), headers={"ETag": stored_etag(doc)})


@api.route(
    "teams/consult-replies",
    "POST",
    access=PUBLIC,
    summary="A provider's reply, from a team's Teams outgoing webhook",
    body=M + "TeamsActivity",
    query=M + "TeamsReplyQuery",
    response=M + "TeamsAnswer",
    errors=(401,),
    headers=(TEAMS_SIGNATURE,),
)
async def consult_reply(call: Call) -> Reply:
    """Teams calls this with the channel message that @mentions the outgoing webhook, signed
    `Authorization: HMAC <base64>` (HMAC-SHA256 of the raw body with the base64-decoded token of
    the team, or PSC_TEAMS_OUTGOING_TOKEN); missing or wrong is 401. Stored first, then matched
    to its consult by the reference code in the text; the answer is what Teams shows in the
    channel. A redelivered reply is answered again and applied once."""
    raw = call.request.get_body() or b""
    answer = await _intake(call.runtime).receive(
        raw, call.header("Authorization"), call.query.teamId, call.body
    )
    return Reply(body=answer)


@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
async def consult_sweep(timer: func.TimerRequest) -> None:
    """Every 15 minutes: consults unanswered past their time become `expired`; replies stored but
    never processed (a crash in between) are processed."""
    from shared.consults.api import Consults
    from shared.kernel.observability import new_correlation_id, request_scope
    from shared.runtime import get_runtime

    with request_scope(new_correlation_id()):
        rt = await get_runtime()
        now = rt.clock.now()
        teams = _teams(rt)
        expired = await Consults(rt.store, rt.bus, rt.clock, teams, rt.workflows).expire_due(now)
        retried = await _intake(rt).retry_stuck(now)
        if expired or retried:
            log.info("consult sweep", extra={"expired": expired, "retried": retried})
