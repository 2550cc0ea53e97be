"""A provider's reply from Teams: `POST /api/teams/consult-replies`, called by the team's outgoing
webhook when someone @mentions it in the channel.

Teams signs the raw body: `Authorization: HMAC <base64(HMAC-SHA256(base64-decoded token, body))>`
and gives the webhook 5 s to answer (verified by reading Microsoft's outgoing-webhook page). The
signature is checked against every key that may sign for a team (its own token, or
PSC_TEAMS_OUTGOING_TOKEN), in constant time; missing or wrong is 401 before anything is read.
Then the reply is stored as it came (`teams-reply:<sha256(activity id)>`, created only if absent:
a redelivery answers the same and applies nothing twice) and only then matched: the first
reference code in its text that names a consult of a team the signature speaks for. The reply is
kept on the consult (its first one makes it `answered`) and becomes, through `land_reply`, an
internal note of the conversation, pushed to the agent by its event: consult, note and events in
one batch in the conversation's partition. A reply stored but not processed
(a crash in between) is picked up by the consult sweep after a minute.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.consults.card import codes_in, shown
from shared.consults.consults import commit
from shared.consults.documents import ConsultDocument, ConsultRef, TeamsReplyDocument, consult_doc_id
from shared.consults.model import TeamsActivity, TeamsAnswer
from shared.consults.teams import Signer, Teams
from shared.conversations.api import Author, ConversationDocument, Status, append_message
from shared.kernel.catalog import CONSULTS, CONVERSATIONS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore, Query, where
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed, Unauthorized, ValidationFailed
from shared.kernel.messages import MessageBus
from shared.kernel.retry import retry
from shared.kernel.stored import Document, Stored
from shared.kernel.times import stamp

log = logging.getLogger(__name__)

STUCK_AFTER = timedelta(minutes=1)
_MENTIONS = re.compile(r"<at>[^<]*</at>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")


def verify_signature(raw: bytes, authorization: str | None, signers: list[Signer]) -> frozenset[str]:
    """The teams the signature speaks for; `Unauthorized` when no key made it."""
    if not authorization or not authorization.startswith("HMAC "):
        raise Unauthorized("Sign the request with HMAC as Teams outgoing webhooks do.")
    try:
        given = base64.b64decode(authorization[5:].strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("The HMAC signature is not base64.") from None
    teams: set[str] = set()
    valid = False
    for signer in signers:
        expected = hmac.new(signer.key, raw, hashlib.sha256).digest()
        if hmac.compare_digest(expected, given):
            valid = True
            teams |= signer.team_ids
    if not valid:
        raise Unauthorized("The HMAC signature does not match.")
    return frozenset(teams)


def reply_text(activity: TeamsActivity) -> str:
    """The message as the provider wrote it: Teams sends HTML with the @mention of the outgoing
    webhook in `<at>` tags, left out here."""
    text = _TAGS.sub(" ", _MENTIONS.sub(" ", activity.text or ""))
    for entity, char in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&")):
        text = text.replace(entity, char)
    return " ".join(text.split())


NOTE_LIMIT = 4000


def land_reply(
    consult: ConsultDocument, reply: dict[str, object]
) -> Callable[[ConversationDocument], tuple[ConversationDocument, list[Document]]]:
    """Where a reply reaches the conversation: an internal note (`visibility: internal`: staff
    only, never shown to the patient nor sent to the bot), written by `system` in the consult's
    name, committed with the consult's answer. Its `conversation.message` event (seq, visibility,
    ids: never the text) is what pushes it to the agent. A closed conversation takes no more
    messages: there the reply stays on the consult, which staff read."""
    code = shown(consult.code)
    sender = str(reply.get("fromName") or "the provider")
    text = f"Consult {code}, answered by {sender}: {reply['text']}"[:NOTE_LIMIT]

    def note(conversation: ConversationDocument) -> tuple[ConversationDocument, list[Document]]:
        if conversation.status == Status.CLOSED:
            return conversation, []
        return append_message(
            conversation,
            author=Author(role="system", id=f"consult:{consult.code}", name=sender[:200]),
            visibility="internal",
            text=text,
            at=str(reply["at"]),
            client_id=f"consult-{consult.code}-{reply['activity']}"[:100],
            sender="consults",
        )

    return note


class ReplyIntake:
    def __init__(self, store: DocumentStore, bus: MessageBus, clock: Clock, teams: Teams) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._teams = teams
        self._replies = Stored(store, CONSULTS, TeamsReplyDocument)
        self._refs = Stored(store, CONSULTS, ConsultRef)
        self._consults = Stored(store, CONVERSATIONS, ConsultDocument)

    async def receive(
        self, raw: bytes, authorization: str | None, team_id: str | None, activity: TeamsActivity
    ) -> TeamsAnswer:
        team_ids = verify_signature(raw, authorization, await self._teams.signers(team_id))
        if not activity.id or activity.type not in (None, "message"):
            raise ValidationFailed([{"field": "body.id", "message": "a Teams message activity has an id"}])
        sender = activity.from_ or {}
        reply = TeamsReplyDocument(
            id="teams-reply:" + hashlib.sha256(activity.id.encode()).hexdigest(),
            activity=activity.id,
            team_ids=sorted(team_ids),
            received_at=stamp(self._clock.now()),
            text=reply_text(activity)[:4000],
            from_name=str(sender["name"])[:200] if isinstance(sender.get("name"), str) else None,
        )
        try:
            reply = await self._replies.create(reply)
        except Conflict:
            reply = await self._replies.read(reply.id)
        return await self.process(reply)

    async def process(self, reply: TeamsReplyDocument) -> TeamsAnswer:
        """Match and apply a stored reply (again: every step is idempotent)."""
        if reply.status == "unmatched":
            return _unmatched()
        consult = await self._match(reply)
        if consult is None:
            await self._mark(reply, "unmatched", None)
            return _unmatched()
        await self._apply(consult, reply)
        await self._mark(reply, "matched", consult.code)
        return TeamsAnswer(text=f"Thank you: your answer to consult {shown(consult.code)} reached the agent.")

    async def _match(self, reply: TeamsReplyDocument) -> ConsultDocument | None:
        if reply.consult_id:
            ref = await self._refs.read_or_none(reply.consult_id)
            return None if ref is None else await self._consult(ref)
        for code in codes_in(reply.text)[:3]:
            ref = await self._refs.read_or_none(code)
            if ref is None or ref.team_id not in reply.team_ids:
                continue
            consult = await self._consult(ref)
            if consult is not None:  # None: the card was never confirmed as sent
                return consult
        return None

    async def _consult(self, ref: ConsultRef) -> ConsultDocument | None:
        return await self._consults.read_or_none(consult_doc_id(ref.id), ref.conversation_id)

    async def _apply(self, consult: ConsultDocument, reply: TeamsReplyDocument) -> None:
        """The reply on the consult (its first makes it `answered`), the internal note and the
        events: one batch, so a redelivery finds the reply on the consult and writes nothing."""
        entry: dict[str, object] = {
            "activity": reply.activity,
            "at": reply.received_at,
            "fromName": reply.from_name,
            "text": reply.text,
        }

        async def step() -> None:
            current = await self._consults.read(consult.id, consult.conversation_id)
            if any(r.get("activity") == reply.activity for r in current.replies):
                return
            fresh = current.changed(
                replies=[*current.replies, entry][-50:],
                status="answered",
                answered_at=current.answered_at or reply.received_at,
            )
            # A later reply changes the consult without changing its status: no consult event
            # (its note's `conversation.message` tells the agent).
            event = "answered" if current.status != "answered" else None
            await commit(
                self._store, fresh, event, reply.received_at, created=False, note=land_reply(fresh, entry)
            )

        await retry(step)
        log.info(
            "consult reply landed",
            extra={"conversation_id": consult.conversation_id, "consult_id": consult.code},
        )

    async def _mark(self, reply: TeamsReplyDocument, status: str, consult_id: str | None) -> None:
        if reply.status == status:
            return
        # Processed concurrently (a redelivery): the other one marked it.
        with contextlib.suppress(PreconditionFailed, NotFound):
            await self._replies.replace(reply.changed(status=status, consult_id=consult_id))

    async def retry_stuck(self, now: datetime, *, max_items: int = 100) -> int:
        """The sweep: replies stored more than a minute ago and never processed."""
        page = await self._replies.query_cross_partition(
            Query(
                (
                    where("type", "=", "teams-reply"),
                    where("status", "=", "received"),
                    where("receivedAt", "<", stamp(now - STUCK_AFTER)),
                )
            ),
            max_items=max_items,
        )
        for reply in page.items:
            await self.process(reply)
        return len(page.items)


def _unmatched() -> TeamsAnswer:
    return TeamsAnswer(
        text="No open consult matches this reply: start it with @<webhook name> and the reference "
        "on the card (XXXX-XXXX)."
    )
