"""The consults capability's public module: Teams configuration, consults and provider replies."""

from shared.consults.card import codes_in, consult_card, new_code, shown, workflow_payload
from shared.consults.consults import CONSULT_HOURS, Consults, consult_id, consult_view
from shared.consults.documents import ConsultDocument, TeamDocument, TeamsReplyDocument
from shared.consults.model import (
    Consult,
    ConsultRequest,
    ConsultStatus,
    TeamRequest,
    TeamsActivity,
    TeamsAnswer,
    TeamsReplyQuery,
    TeamView,
)
from shared.consults.replies import ReplyIntake, land_reply, reply_text, verify_signature
from shared.consults.teams import Signer, Teams
from shared.consults.workflow_url import WORKFLOW_DOMAINS, WorkflowUrlPolicy, WorkflowUrlRefused

__all__ = [
    "CONSULT_HOURS",
    "WORKFLOW_DOMAINS",
    "Consult",
    "ConsultDocument",
    "ConsultRequest",
    "ConsultStatus",
    "Consults",
    "ReplyIntake",
    "Signer",
    "TeamDocument",
    "TeamRequest",
    "TeamView",
    "Teams",
    "TeamsActivity",
    "TeamsAnswer",
    "TeamsReplyDocument",
    "TeamsReplyQuery",
    "WorkflowUrlPolicy",
    "WorkflowUrlRefused",
    "codes_in",
    "consult_card",
    "consult_id",
    "consult_view",
    "land_reply",
    "new_code",
    "reply_text",
    "shown",
    "verify_signature",
    "workflow_payload",
]
