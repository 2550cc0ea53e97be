"""The consults capability's stored documents: team configuration (`teams`, partition `/id`),
reference codes and the replies Teams delivered (`consults`, partition `/id`), and the consults
themselves in their conversation's partition of `conversations` (`/conversationId`), where their
changes commit with their events through the outbox. Secrets live in the Secrets port; a team
document holds only their names."""

from __future__ import annotations

from typing import Any, Literal

from shared.kernel.stored import Document

TEAM_INDEX_ID = "team-index"


def team_doc_id(team_id: str) -> str:
    return f"team:{team_id}"


def provider_team_id(provider_id: str) -> str:
    return f"provider-team:{provider_id}"


class TeamDocument(Document):
    type: Literal["team"] = "team"
    team_id: str
    name: str
    provider_ids: list[str] = []
    webhook_name: str = "PSC"
    workflow_secret: str
    workflow_host: str
    token_secret: str | None = None
    updated_at: str
    updated_by: str


class ProviderTeam(Document):
    """`provider-team:<providerId>` → the team a provider's consults go to (re-checked against the
    team's own list when read: a stale entry is ignored)."""

    type: Literal["provider-team"] = "provider-team"
    team_id: str


class TeamIndex(Document):
    """The configured teams, so a reply's signature can be checked against each of their tokens."""

    type: Literal["team-index"] = "team-index"
    team_ids: list[str] = []


CONSULT_PREFIX = "consult:"


def consult_doc_id(code: str) -> str:
    return CONSULT_PREFIX + code


class ConsultRef(Document):
    """`<code>` in `consults` (partition `/id`): the reference code, created only if absent (so no
    two consults share one), naming the conversation whose partition holds the consult. Written
    before the card is posted; a ref without its consult is a card never confirmed as sent."""

    type: Literal["consult-ref"] = "consult-ref"
    conversation_id: str
    team_id: str
    created_at: str


class ConsultDocument(Document):
    """A consult, in its conversation's partition of `conversations` (id `consult:<code>`), so its
    changes commit with the conversation's events and the reply's internal note in one batch."""

    type: Literal["consult"] = "consult"
    conversation_id: str
    agent_id: str
    team_id: str
    provider_id: str | None = None
    question: str
    status: Literal["sent", "answered", "expired"]
    created_at: str
    sent_at: str | None = None
    expires_at: str
    answered_at: str | None = None
    expired_at: str | None = None
    # {"activity": Teams' activity id, "at", "fromName", "text"}: a redelivery adds nothing.
    replies: list[dict[str, Any]] = []

    @property
    def code(self) -> str:
        return self.id.removeprefix(CONSULT_PREFIX)


class TeamsReplyDocument(Document):
    """`teams-reply:<sha256(activity id)>`: a provider's reply exactly as Teams delivered it, stored
    before anything else is done with it (created only if absent: a redelivery is answered, not
    applied twice). `status`: received → matched | unmatched."""

    type: Literal["teams-reply"] = "teams-reply"
    activity: str
    team_ids: list[str]
    received_at: str
    text: str
    from_name: str | None = None
    status: Literal["received", "matched", "unmatched"] = "received"
    consult_id: str | None = None
