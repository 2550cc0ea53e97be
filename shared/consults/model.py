"""Teams consults as the API reads and writes them: a team's configuration, a consult, and the
outgoing-webhook activity Teams posts when a provider replies."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.kernel.ids import Id
from shared.kernel.text import Line, Text
from shared.kernel.times import InstantText


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class TeamRequest(_Strict):
    """`PUT /api/manage/teams/{teamId}`. `workflowUrl` (the channel's Workflows webhook URL) and
    `outgoingToken` (the security token Teams shows when the outgoing webhook is created) are
    secrets: kept in Key Vault (the dev host: a file of their own), never returned. Leave either
    out to keep the one stored; `workflowUrl` is required when the team is created. Without a
    token of its own the team's replies are checked against PSC_TEAMS_OUTGOING_TOKEN."""

    name: Line = Field(min_length=1, max_length=200)
    workflowUrl: str | None = Field(None, min_length=8, max_length=2048)
    outgoingToken: str | None = Field(None, min_length=16, max_length=200, description="base64")
    providerIds: list[Id] = Field(
        default_factory=list, max_length=200, description="Providers whose consults go to this team."
    )
    webhookName: Line = Field(
        "PSC",
        min_length=1,
        max_length=100,
        description="The outgoing webhook's name in Teams: the card tells providers to @mention it.",
    )


TokenSource = Literal["own", "default", "none"]


class TeamView(BaseModel):
    id: str
    name: str
    providerIds: list[str]
    webhookName: str
    workflowHost: str = Field(description="The host of the stored Workflows URL (the URL itself is secret).")
    outgoingToken: TokenSource = Field(
        description="Which token checks the team's replies: its own, PSC_TEAMS_OUTGOING_TOKEN, or none yet."
    )
    updatedAt: InstantText


class ConsultStatus(StrEnum):
    SENT = "sent"
    ANSWERED = "answered"
    EXPIRED = "expired"


class ConsultRequest(_Strict):
    """`POST /api/conversations/{id}/consults`: exactly one of `providerId` (the provider's team)
    or `teamId`. The question goes to Teams: it must not name the patient or carry their contact
    details or date of birth (a question that does is refused)."""

    providerId: Id | None = None
    teamId: Id | None = None
    question: Text = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _one_target(self) -> ConsultRequest:
        if (self.providerId is None) == (self.teamId is None):
            raise ValueError("give exactly one of providerId or teamId")
        return self


class ConsultReply(BaseModel):
    at: InstantText
    fromName: str | None = None
    text: str


class Consult(BaseModel):
    id: str = Field(description="The reference code on the card (`XXXX-XXXX`), as the provider quotes it.")
    conversationId: str
    teamId: str
    providerId: str | None = None
    question: str
    status: ConsultStatus
    sentAt: InstantText
    expiresAt: InstantText
    answeredAt: InstantText | None = None
    replies: list[ConsultReply] = Field(default_factory=list)


class TeamsActivity(BaseModel):
    """What a Teams outgoing webhook posts (a Bot Framework message activity): only the fields
    read here; everything else is ignored. Checked only after its HMAC signature."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    type: str | None = None
    id: str | None = Field(None, max_length=512)
    text: str | None = Field(None, max_length=28_000)
    from_: dict[str, Any] | None = Field(None, alias="from")
    conversation: dict[str, Any] | None = None
    channelData: dict[str, Any] | None = None


class TeamsReplyQuery(_Strict):
    teamId: Id | None = Field(
        None,
        description="The team whose outgoing webhook calls (register the callback URL with it): its "
        "token alone is checked. Without it every configured token is tried.",
    )


class TeamsAnswer(BaseModel):
    """What Teams shows in the channel under the provider's message."""

    type: Literal["message"] = "message"
    text: str
