"""Signed one-use links in reminders, confirmations (of a booking or a move) and surveys.

A token is 16 base64url characters: HMAC-SHA256, truncated to 96 bits, over a compact payload
(kind, notification id, appointment id and version, expiry) with `PSC_LINK_SIGNING_KEY`. The
payload itself is not in the token (an SMS has room for two links of about 50 characters, not for
a notification id), but in a link document in `lookups` whose id is derived from the token
(`link:<sha256(token)>`): a point read finds it, and the MAC recomputed over what it holds must
equal the token, so a forged token finds nothing and a document the key did not sign is refused.
The document also records the one use (`usedAt`, written with its ETag, so two clicks at once
act once). `GET` never acts: mail scanners fetch links.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from shared.kernel.catalog import LOOKUPS
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, Gone, NotFound, PreconditionFailed
from shared.kernel.stored import Document, Stored
from shared.kernel.times import parse_stamp, stamp

LinkKind = Literal["confirm", "cancel", "survey"]
TOKEN_BYTES = 12  # 96 bits of MAC: beyond guessing, 16 characters in a URL
# A used or expired link's document stays a while, so a second click answers 409/410, not 404.
LINK_TTL_AFTER_EXPIRY = timedelta(days=30)


class LinkDocument(Document):
    DROP_NONE: ClassVar[bool] = True

    type: Literal["link"] = "link"
    kind: LinkKind
    notification_id: str
    patient_id: str
    subject_id: str
    subject_version: int = 0
    expires_at: str
    created_at: str
    used_at: str | None = None
    outcome: str | None = None
    ttl: int


def payload(kind: str, notification_id: str, subject_id: str, version: int, expires_at: str) -> bytes:
    return "\n".join((kind, notification_id, subject_id, str(version), expires_at)).encode()


def sign(key: str, data: bytes) -> str:
    mac = hmac.new(key.encode(), data, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def link_doc_id(token: str) -> str:
    return "link:" + hashlib.sha256(token.encode()).hexdigest()


class Links:
    def __init__(self, store: DocumentStore, key: str | None) -> None:
        self._links = Stored(store, LOOKUPS, LinkDocument)
        self._key = key

    @property
    def enabled(self) -> bool:
        return self._key is not None

    async def mint(
        self,
        kind: LinkKind,
        *,
        notification_id: str,
        patient_id: str,
        subject_id: str,
        version: int,
        expires: datetime,
        now: datetime,
    ) -> str:
        """The token of one link, its document written (idempotent: the same inputs give the same
        token and document, so a redelivered send mints the same links)."""
        if self._key is None:
            raise ValueError("PSC_LINK_SIGNING_KEY is not set: links cannot be signed")
        expires_at = stamp(expires)
        token = sign(self._key, payload(kind, notification_id, subject_id, version, expires_at))
        existing = await self._links.read_or_none(link_doc_id(token))
        if existing is None:
            ttl = int((expires - now + LINK_TTL_AFTER_EXPIRY).total_seconds())
            doc = LinkDocument(
                id=link_doc_id(token),
                kind=kind,
                notification_id=notification_id,
                patient_id=patient_id,
                subject_id=subject_id,
                subject_version=version,
                expires_at=expires_at,
                created_at=stamp(now),
                ttl=max(ttl, 60),
            )
            with contextlib.suppress(Conflict):  # a concurrent send minted the same link
                await self._links.create(doc)
        return token

    async def find(self, token: str, now: datetime) -> LinkDocument:
        """The link's document: 404 unknown or not signed by our key, 410 expired, 409 used."""
        if self._key is None or not 10 <= len(token) <= 32:
            raise NotFound("No such link.")
        doc = await self._links.read_or_none(link_doc_id(token))
        if doc is None:
            raise NotFound("No such link.")
        expected = sign(
            self._key,
            payload(doc.kind, doc.notification_id, doc.subject_id, doc.subject_version, doc.expires_at),
        )
        if not hmac.compare_digest(expected, token):
            raise NotFound("No such link.")
        if doc.used_at is not None:
            raise Conflict("This link was used already.")
        if now >= parse_stamp(doc.expires_at):
            raise Gone("This link has expired.")
        return doc

    async def use(self, doc: LinkDocument, now: datetime, outcome: str) -> LinkDocument:
        """Mark the link used (ETag-checked: of two clicks at once, one acts, the other is a 409)."""
        try:
            return await self._links.replace(doc.changed(used_at=stamp(now), outcome=outcome))
        except (PreconditionFailed, NotFound):
            raise Conflict("This link was used already.") from None

    async def unuse(self, doc: LinkDocument) -> None:
        """Give a link back after the action it was used for failed (best effort)."""
        with contextlib.suppress(PreconditionFailed, NotFound):
            await self._links.replace(doc.changed(used_at=None, outcome=None))
