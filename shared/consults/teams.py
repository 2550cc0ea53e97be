"""Teams configuration (IntegrationAdmin): a team's name, its providers, and its two secrets, the
Workflows webhook URL cards are posted to and the outgoing webhook's token replies are signed with.

Secrets go to the Secrets port (Key Vault in Azure) under names derived from the team id; the team
document keeps only those names, the URL's host (to show) and which token applies. Reads never
return a secret. The secrets are written before the document that names them, so a crash leaves
at worst a secret nobody reads. A provider's team is kept as `provider-team:<providerId>` (written
before the team document, removed after, re-checked against the team on read), and the configured
team ids in `team-index` (for checking a reply's signature against every team's token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from dataclasses import dataclass

from shared.auth.principal import Principal
from shared.consults.documents import (
    TEAM_INDEX_ID,
    ProviderTeam,
    TeamDocument,
    TeamIndex,
    provider_team_id,
    team_doc_id,
)
from shared.consults.model import TeamRequest, TeamView, TokenSource
from shared.consults.workflow_url import WorkflowUrlPolicy, WorkflowUrlRefused
from shared.kernel.catalog import PROVIDERS, TEAMS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    UnprocessableContent,
    ValidationFailed,
)
from shared.kernel.etags import IfMatch, check_if_match, entity_tag
from shared.kernel.retry import Again, retry
from shared.kernel.secrets import Secrets, secret_name
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.scheduling.api import ProviderDocument


def check_token(value: str) -> bytes:
    """The HMAC key of an outgoing webhook's token (base64, as Teams shows it)."""
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            [{"field": "body.outgoingToken", "message": "must be the base64 security token Teams showed"}]
        ) from None
    if len(key) < 16:
        raise ValidationFailed(
            [{"field": "body.outgoingToken", "message": "is too short to be a Teams token"}]
        )
    return key


@dataclass(frozen=True)
class Signer:
    """One HMAC key and the teams whose replies it signs."""

    key: bytes
    team_ids: frozenset[str]


class Teams:
    def __init__(
        self,
        store: DocumentStore,
        secrets: Secrets,
        clock: Clock,
        policy: WorkflowUrlPolicy,
        default_token: str | None,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._clock = clock
        self._policy = policy
        self._default_token = default_token
        self._teams = Stored(store, TEAMS, TeamDocument)
        self._providers = Stored(store, TEAMS, ProviderTeam)
        self._index = Stored(store, TEAMS, TeamIndex)

    # Reading ----------------------------------------------------------------------------------

    async def get(self, team_id: str) -> TeamDocument:
        doc = await self._teams.read_or_none(team_doc_id(team_id))
        if doc is None:
            raise NotFound("No such team.")
        return doc

    async def get_or_none(self, team_id: str) -> TeamDocument | None:
        return await self._teams.read_or_none(team_doc_id(team_id))

    def token_source(self, doc: TeamDocument) -> TokenSource:
        if doc.token_secret:
            return "own"
        return "default" if self._default_token else "none"

    def view(self, doc: TeamDocument) -> TeamView:
        return TeamView(
            id=doc.team_id,
            name=doc.name,
            providerIds=list(doc.provider_ids),
            webhookName=doc.webhook_name,
            workflowHost=doc.workflow_host,
            outgoingToken=self.token_source(doc),
            updatedAt=doc.updated_at,
        )

    async def team_for_provider(self, provider_id: str) -> TeamDocument | None:
        entry = await self._providers.read_or_none(provider_team_id(provider_id))
        if entry is None:
            return None
        team = await self.get_or_none(entry.team_id)
        return team if team is not None and provider_id in team.provider_ids else None

    async def workflow_url(self, doc: TeamDocument) -> str | None:
        return await self._secrets.get(doc.workflow_secret)

    async def signers(self, team_id: str | None = None) -> list[Signer]:
        """The keys a reply may be signed with: the team's (or every configured team's) own token,
        and PSC_TEAMS_OUTGOING_TOKEN for teams without one."""
        if team_id is not None:
            team_ids = [team_id]
        else:
            index = await self._index.read_or_none(TEAM_INDEX_ID)
            team_ids = [] if index is None else list(index.team_ids)
        teams = [t for t in await asyncio.gather(*(self.get_or_none(t) for t in team_ids)) if t is not None]
        own = await asyncio.gather(*(self._secrets.get(t.token_secret) for t in teams if t.token_secret))
        signers: dict[bytes, set[str]] = {}
        for team, token in zip([t for t in teams if t.token_secret], own, strict=True):
            if token:
                signers.setdefault(base64.b64decode(token), set()).add(team.team_id)
        defaulted = {t.team_id for t in teams if not t.token_secret}
        if self._default_token:
            signers.setdefault(base64.b64decode(self._default_token), set()).update(defaulted)
        return [Signer(key, frozenset(ids)) for key, ids in signers.items()]

    # Writing ----------------------------------------------------------------------------------

    async def put(
        self, actor: Principal, team_id: str, request: TeamRequest, *, if_match: IfMatch | None
    ) -> tuple[TeamDocument, bool]:
        errors = []
        host = None
        if request.workflowUrl is not None:
            try:
                checked = self._policy.check_url(request.workflowUrl)
            except WorkflowUrlRefused as refused:
                errors.append({"field": "body.workflowUrl", "message": str(refused)})
            else:
                from yarl import URL

                host = URL(checked).raw_host
        if request.outgoingToken is not None:
            try:
                check_token(request.outgoingToken)
            except ValidationFailed as failed:
                errors += failed.errors
        if errors:
            raise ValidationFailed(errors)
        providers = Stored(self._store, PROVIDERS, ProviderDocument)
        found = await asyncio.gather(*(providers.read_or_none(p) for p in request.providerIds))
        missing = [
            {"field": f"body.providerIds[{i}]", "message": "no such provider"}
            for i, doc in enumerate(found)
            if doc is None
        ]
        if missing:
            raise UnprocessableContent(missing)
        current = await self.get_or_none(team_id)
        check_if_match(if_match, None if current is None else entity_tag(current.etag), "team")
        if current is None and request.workflowUrl is None:
            raise ValidationFailed([{"field": "body.workflowUrl", "message": "is required for a new team"}])
        workflow_secret = secret_name("team-workflow", team_id)
        token_secret = current.token_secret if current is not None else None
        if request.workflowUrl is not None:
            await self._secrets.put(workflow_secret, request.workflowUrl)
        if request.outgoingToken is not None:
            token_secret = secret_name("team-token", team_id)
            await self._secrets.put(token_secret, request.outgoingToken)
        await self._add_to_index(team_id)
        providers_now = list(dict.fromkeys(request.providerIds))
        for provider_id in providers_now:
            await self._providers.upsert(ProviderTeam(id=provider_team_id(provider_id), team_id=team_id))

        async def step() -> tuple[TeamDocument, bool]:
            existing = await self.get_or_none(team_id)
            check_if_match(if_match, None if existing is None else entity_tag(existing.etag), "team")
            doc = TeamDocument(
                id=team_doc_id(team_id),
                team_id=team_id,
                name=request.name,
                provider_ids=providers_now,
                webhook_name=request.webhookName,
                workflow_secret=workflow_secret,
                workflow_host=host or (existing.workflow_host if existing else ""),
                token_secret=token_secret,
                updated_at=stamp(self._clock.now()),
                updated_by=actor.subject,
            )
            try:
                if existing is None:
                    return await self._teams.create(doc), True
                return await self._teams.replace(doc.over(existing)), False
            except (Conflict, NotFound):
                raise Again() from None

        written, created = await retry(step, give_up=lambda: Conflict("The team is being changed; retry."))
        dropped = set(current.provider_ids if current else ()) - set(providers_now)
        for provider_id in dropped:
            entry = await self._providers.read_or_none(provider_team_id(provider_id))
            if entry is not None and entry.team_id == team_id:
                # Moved to another team meanwhile, or gone: leave it.
                with contextlib.suppress(NotFound, PreconditionFailed):
                    await self._providers.delete(entry.id, etag=entry.etag)
        return written, created

    async def _add_to_index(self, team_id: str) -> None:
        async def step() -> None:
            index = await self._index.read_or_none(TEAM_INDEX_ID)
            if index is not None and team_id in index.team_ids:
                return
            if index is None:
                try:
                    await self._index.create(TeamIndex(id=TEAM_INDEX_ID, team_ids=[team_id]))
                except Conflict:
                    raise Again() from None
                return
            await self._index.replace(index.changed(team_ids=[*index.team_ids, team_id]))

        await retry(step, give_up=lambda: Conflict("The team list is being changed; retry."))
