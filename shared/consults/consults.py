"""A consult: an agent asks a provider's team a question in Teams about a conversation they hold.

The reference code is claimed first (`consults/<code>`, created only if absent), then the card is
posted through the team's Workflows URL, then the consult is written `sent` in its conversation's
partition of `conversations` (`consult:<code>`) with the conversation's `consult.sent` event, in one
batch through the outbox (shared/kernel/outbox.py); a post Teams does not accept releases the code
and answers 503, so nothing half-sent remains. A consult is `answered` by the first reply that
quotes its code (shared/consults/replies.py: the reply's internal note, the consult and
`consult.answered` in one batch) and `expired` when none came within CONSULT_HOURS (the consult
sweep: the consult and `consult.expired` in one batch). A consult's events are events of its
conversation (the aggregate whose partition holds it): message id `<conversationId>:<version>.<n>`,
session the conversation, so they reach the topic through the conversations relay, in order with
the conversation's own, and a change never stands without its event. Ids and times only.

The question leaves our systems, so it is checked against the patient's own record first: a
question holding the patient's name, e-mail, phone number or date of birth is refused (400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.audit.api import record_access
from shared.auth.principal import Principal, Role
from shared.consults.card import consult_card, new_code, shown, workflow_payload
from shared.consults.documents import ConsultDocument, ConsultRef, consult_doc_id
from shared.consults.model import Consult, ConsultReply, ConsultRequest, ConsultStatus
from shared.consults.teams import Teams
from shared.conversations.api import ConversationDocument, Status, conversations
from shared.kernel.catalog import CONSULTS, CONVERSATIONS, PROVIDERS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    Unavailable,
    UnprocessableContent,
    ValidationFailed,
)
from shared.kernel.messages import MessageBus
from shared.kernel.retry import retry
from shared.kernel.stored import Document, Stored
from shared.kernel.times import stamp
from shared.kernel.workflows import WorkflowPoster
from shared.patients.api import PatientRegistry
from shared.routing.api import RoutingDirectory
from shared.scheduling.api import ProviderDocument

CONSULT_HOURS = 24
ASKING = frozenset({Status.ACTIVE, Status.WRAPUP})
_QUESTION_RULE = "must not name the patient or hold their contact details or date of birth"


def consult_view(doc: ConsultDocument) -> Consult:
    return Consult(
        id=shown(doc.code),
        conversationId=doc.conversation_id,
        teamId=doc.team_id,
        providerId=doc.provider_id,
        question=doc.question,
        status=ConsultStatus(doc.status),
        sentAt=doc.sent_at or doc.created_at,
        expiresAt=doc.expires_at,
        answeredAt=doc.answered_at,
        replies=[ConsultReply(at=r["at"], fromName=r.get("fromName"), text=r["text"]) for r in doc.replies],
    )


def consult_id(code: str) -> str:
    """A code as shown (`ABCD-1234`) or stored (`ABCD1234`) → the stored id."""
    return code.replace("-", "").upper()


def emit(
    conversation: ConversationDocument, doc: ConsultDocument, event: str, at: str
) -> ConversationDocument:
    """The conversation with `consult.<event>` to write (ids and times only: never the question
    or a reply)."""
    return conversation.emit(
        f"consult.{event}",
        at,
        consultId=doc.code,
        teamId=doc.team_id,
        agentId=doc.agent_id,
        providerId=doc.provider_id,
        status=doc.status,
    )


async def commit(
    store: DocumentStore,
    doc: ConsultDocument,
    event: str | None,
    at: str,
    *,
    created: bool,
    note: Callable[[ConversationDocument], tuple[ConversationDocument, list[Document]]] | None = None,
) -> ConsultDocument:
    """Write the consult (created, or replaced under its ETag) with its conversation's event and,
    from `note`, the conversation's other change and its children (a reply's internal note): one
    batch in the conversation's partition. `PreconditionFailed` when either changed since read."""
    conversation = await conversations.read(store, doc.conversation_id)
    changed, children = note(conversation) if note is not None else (conversation, [])
    if event is not None:
        changed = emit(changed, doc, event, at)
    if created:
        await conversations.replace(store, changed, [doc, *children])
    else:
        await conversations.replace(store, changed, children, replaced=[doc])
    return await Stored(store, CONVERSATIONS, ConsultDocument).read(doc.id, doc.conversation_id)


def _patient_details(record: dict[str, object]) -> list[re.Pattern[str]]:
    """Patterns of what identifies the patient in free text: name parts of 3+ letters, the
    e-mail, the phone number's digits, the date of birth in the usual spellings."""
    patterns: list[re.Pattern[str]] = []
    names = " ".join(str(record.get(k) or "") for k in ("name", "givenName", "familyName"))
    for part in {p for p in re.split(r"[\s,.'-]+", names) if len(p) >= 3}:
        patterns.append(re.compile(rf"(?<!\w){re.escape(part)}(?!\w)", re.IGNORECASE))
    if record.get("email"):
        patterns.append(re.compile(re.escape(str(record["email"])), re.IGNORECASE))
    digits = re.sub(r"\D", "", str(record.get("phone") or ""))
    if len(digits) >= 7:
        patterns.append(re.compile(r"\D*".join(re.escape(d) for d in digits[-9:])))
    birth = str(record.get("dateOfBirth") or "")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth):
        y, m, d = birth.split("-")
        for spelled in (f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}-{m}-{y}"):
            patterns.append(re.compile(re.escape(spelled)))
    return patterns


class Consults:
    def __init__(
        self, store: DocumentStore, bus: MessageBus, clock: Clock, teams: Teams, poster: WorkflowPoster
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._teams = teams
        self._poster = poster
        self._refs = Stored(store, CONSULTS, ConsultRef)
        self._consults = Stored(store, CONVERSATIONS, ConsultDocument)

    async def _conversation(self, principal: Principal, conversation_id: str) -> ConversationDocument:
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None or doc.agent_id != principal.subject:
            raise NotFound("no such conversation")
        return doc

    async def _audit(
        self, principal: Principal, action: str, doc: ConsultDocument, patient_id: str, cid: str | None
    ) -> None:
        # The conversation's patient (a merge moves the conversation, and so its consults, on).
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action=action,  # type: ignore[arg-type]
            resource=f"conversations/{doc.conversation_id}/consults/{doc.code}",
            patient_id=patient_id,
            correlation_id=cid,
        )

    async def create(
        self, principal: Principal, conversation_id: str, request: ConsultRequest, correlation_id: str | None
    ) -> ConsultDocument:
        """For the conversation's assigned agent while it is active or in wrap-up."""
        conversation = await self._conversation(principal, conversation_id)
        if conversation.status not in ASKING:
            raise Conflict(f"the conversation is {conversation.status}")
        if request.teamId is not None:
            team = await self._teams.get_or_none(request.teamId)
            if team is None:
                raise UnprocessableContent([{"field": "body.teamId", "message": "no such team"}])
        else:
            assert request.providerId is not None
            if (
                await Stored(self._store, PROVIDERS, ProviderDocument).read_or_none(request.providerId)
                is None
            ):
                raise UnprocessableContent([{"field": "body.providerId", "message": "no such provider"}])
            team = await self._teams.team_for_provider(request.providerId)
            if team is None:
                raise UnprocessableContent(
                    [{"field": "body.providerId", "message": "no team takes this provider's consults"}]
                )
        stored = await PatientRegistry(self._store, self._clock).read(
            principal, conversation.patient_id, correlation_id or ""
        )
        if any(p.search(request.question) for p in _patient_details(stored.item.body())):
            raise ValidationFailed([{"field": "body.question", "message": _QUESTION_RULE}])
        url = await self._teams.workflow_url(team)
        if not url:
            raise Unavailable("The team's Workflows URL is not available; ask an integration admin.")
        now = self._clock.now()
        ref = await self._claim_code(conversation, team.team_id, now)
        try:
            agent = await RoutingDirectory(self._store).agent_doc(principal.subject)
            agent_name = agent.profile.name
        except NotFound:
            agent_name = principal.name or "an agent"
        card = consult_card(
            code=ref.id,
            agent_name=agent_name,
            question=request.question,
            urgency=conversation.urgency,
            specialty=conversation.specialty,
            reply_to=team.webhook_name,
        )
        result = await self._poster.post(url, workflow_payload(card))
        if not result.ok:
            await self._refs.delete(ref.id, etag=ref.etag)
            raise Unavailable(f"Teams did not accept the consult card ({result.reason}); try again.")
        at = stamp(self._clock.now())
        doc = ConsultDocument(
            id=consult_doc_id(ref.id),
            conversation_id=conversation.id,
            agent_id=principal.subject,
            team_id=team.team_id,
            provider_id=request.providerId,
            question=request.question,
            status="sent",
            created_at=stamp(now),
            sent_at=at,
            expires_at=stamp(now + timedelta(hours=CONSULT_HOURS)),
        )
        sent = await retry(
            lambda: commit(self._store, doc, "sent", at, created=True),
            give_up=lambda: Unavailable("The conversation is busy; the card was posted, retry to record it."),
        )
        await self._audit(principal, "create", sent, conversation.patient_id, correlation_id)
        return sent

    async def _claim_code(
        self, conversation: ConversationDocument, team_id: str, now: datetime
    ) -> ConsultRef:

        async def claim() -> ConsultRef:
            # 40 random bits: a clash (Conflict) is a curiosity; the policy draws another code.
            ref = ConsultRef(
                id=new_code(), conversation_id=conversation.id, team_id=team_id, created_at=stamp(now)
            )
            return await self._refs.create(ref)

        return await retry(
            claim,
            on=(Conflict,),
            attempts=5,
            give_up=lambda: Unavailable("Could not allocate a consult reference; try again."),
        )

    async def read(
        self, principal: Principal, conversation_id: str, code: str, correlation_id: str | None
    ) -> ConsultDocument:
        """The conversation's assigned agent, or a supervisor."""
        doc = await self._consults.read_or_none(consult_doc_id(consult_id(code)), conversation_id)
        if doc is None:
            raise NotFound("No such consult.")
        if principal.has(Role.SUPERVISOR):
            conversation = await conversations.read(self._store, conversation_id)
        else:
            conversation = await self._conversation(principal, conversation_id)
        await self._audit(principal, "read", doc, conversation.patient_id, correlation_id)
        return doc

    async def expire_due(self, now: datetime, *, max_items: int = 200) -> int:
        """The sweep: consults still `sent` past their time become `expired` (first page per run)."""
        # Cross-partition (the sweep only): streamable, no ORDER BY, first page per run.
        page = await self._consults.query_cross_partition(
            Query(
                (
                    where("type", "=", "consult"),
                    where("status", "=", "sent"),
                    where("expiresAt", "<", stamp(now)),
                )
            ),
            max_items=max_items,
        )
        expired = 0
        at = stamp(now)
        for doc in page.items:
            try:
                await commit(
                    self._store, doc.changed(status="expired", expired_at=at), "expired", at, created=False
                )
            except (NotFound, PreconditionFailed):
                continue  # answered or changed meanwhile: the next run looks again
            expired += 1
        return expired
