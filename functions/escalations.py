"""Escalation webhook: a health bot hands a conversation to human agents.

`POST /api/escalations` accepts a bearer token with the app role `Bot.Escalate` or a Standard
Webhooks signature, and either body format (native JSON or a Bot Framework activity). The models
and the service load with the first escalation, not while the worker indexes the app.
"""

from __future__ import annotations

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

bp = func.Blueprint()
api = Api(bp, tag="escalations")


@api.route(
    "escalations",
    "POST",
    access=allow(Role.BOT, signed_webhook=True),
    summary="Escalate a bot conversation to a human agent",
    body="shared.escalations.model:EscalationRequest",
    response="shared.escalations.model:EscalationAnswer",
    status=202,
    also=((200, "Already received (same bot conversation id or replayed webhook-id): the first answer"),),
    errors=(503,),
)
async def escalate(call: Call) -> Reply:
    """Authenticate with `Authorization: Bearer` (app role `Bot.Escalate`) or, without that
    header, a Standard Webhooks signature (`webhook-id`, `webhook-timestamp` within 5 minutes,
    `webhook-signature`). The body is native JSON or a Bot Framework activity whose
    `channelData.tags` is the JSON string `{"type":"Escalate","context":{...}}`. A new
    escalation answers 202; the same bot conversation id (or a replayed `webhook-id`) answers 200
    with the same body and changes nothing. 503 means nothing was kept: retry. An optional
    `callback.url` (`channelData.callback.url` in an activity) names where the bot receives signed
    callbacks about the conversation; a host not listed in PSC_BOT_CALLBACK_HOSTS (or http outside
    dev mode's loopback) is a 400 naming the rule, and nothing is written."""
    from shared.callbacks.api import CallbackPolicy
    from shared.escalations.api import EscalationIntake

    runtime = call.runtime
    policy = CallbackPolicy.from_settings(runtime.settings)
    result = await EscalationIntake(runtime.store, runtime.bus, runtime.clock, policy).escalate(
        call.body.normalized(),
        actor=call.user,
        webhook_id=call.webhook.id if call.webhook else None,
        correlation_id=call.correlation_id,
    )
    return Reply(body=result.answer, status=result.status)
