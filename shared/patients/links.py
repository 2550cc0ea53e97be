"""Patients' sign-in links: which patient record an account (token issuer + `oid`) acts for, and
the one-time codes staff hand a patient to make that link.

Everything lives in `lookups` (partition key `/id`, point operations only), under ids derived
from hashes, so the hot path (every request of a patient who signed in with External ID) is one
point read:

* `patient-link:<sha256(issuer, oid)>` → `patientId` (with issuer, oid, linkedAt); never expires.
* `link-code:<sha256(code)>` → `patientId`, `expiresAt`, and once redeemed `usedBy` (the
  account hash). `ttl` 24 h; `expiresAt` is checked too (TTL deletion is not instantaneous).
  Only the hash is stored. Plain sha256, no pepper: a code carries 50 random bits, lives a day
  and is guessable online only 5 times an hour per account; whoever can read `lookups` offline
  can read the patient records themselves.
* `link-attempts:<sha256(issuer, oid)>` → the times of the account's redemption attempts in the
  last hour (`ttl` 1 h). An attempt is reserved *before* the code is looked up (ETag-checked, so
  concurrent guesses cannot exceed the limit) and given back unless the code was wrong: 5 wrong
  codes an hour, then 429 with Retry-After. Kept in the store because several instances serve.

Single use: redeeming replaces the code document with `usedBy` under its ETag, so of two
concurrent redemptions exactly one wins; the loser sees an invalid code. A redemption retried
after a lost answer (or a crash between consuming the code and writing the link) finds the code
used by the same account and completes the link.

An account already linked to another patient gets 409 and the code stays unused; the link is
never moved by a code (staff would unlink first — not built yet).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.audit.api import record_access
from shared.auth.principal import Principal
from shared.kernel.catalog import LOOKUPS, PATIENTS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import (
    Conflict,
    Forbidden,
    InvalidLinkCode,
    NotFound,
    PreconditionFailed,
    TooManyRequests,
    ValidationFailed,
)
from shared.kernel.retry import Again, retry
from shared.kernel.stored import Stored
from shared.kernel.times import parse_stamp, stamp
from shared.patients.documents import Attempt, LinkAttempts, LinkCode, PatientDocument, PatientLink
from shared.patients.matching import PROVISIONAL_PREFIX
from shared.patients.merging import survivor_of
from shared.patients.model import check_patient_id

CODE_TTL = timedelta(hours=24)
ATTEMPT_WINDOW = timedelta(hours=1)
MAX_FAILED_ATTEMPTS = 5
CODE_LENGTH = 10
# Crockford base32: digits and letters without I, L, O, U (https://www.crockford.com/base32.html).
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Crockford's decoding rules: I and L read as 1, O as 0; hyphens (and the spaces people type) ignored.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})
_RETRIES = 20


def _sha(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def account_key(principal: Principal) -> str:
    if not principal.issuer:
        raise Forbidden("This sign-in cannot be linked to a patient.")
    return _sha(principal.issuer, principal.subject)


def link_id(principal: Principal) -> str:
    return "patient-link:" + account_key(principal)


def code_id(code: str) -> str:
    return "link-code:" + _sha(code)


def new_code() -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str | None:
    """The code as issued, or None when `text` cannot be one (the format is public: no attempt is
    counted for it)."""
    code = text.upper().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(c not in CROCKFORD for c in code):
        return None
    return code


async def linked_patient(store: DocumentStore, principal: Principal) -> str | None:
    """The patient `principal`'s sign-in is linked to (one point read), or None. A link to a
    provisional record that was merged since follows it to the survivor and is rewritten to name
    it (one more read, once: only links to provisional records pay it)."""
    links = Stored(store, LOOKUPS, PatientLink)
    link = await links.read_or_none(link_id(principal))
    if link is None:
        return None
    if link.patient_id.startswith(PROVISIONAL_PREFIX):
        survivor = await survivor_of(store, link.patient_id)
        if survivor != link.patient_id:
            with contextlib.suppress(PreconditionFailed, NotFound):
                await links.replace(link.changed(patient_id=survivor))
            return survivor
    return link.patient_id


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime


class PatientLinks:
    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self._store = store
        self._links = Stored(store, LOOKUPS, PatientLink)
        self._codes = Stored(store, LOOKUPS, LinkCode)
        self._attempts = Stored(store, LOOKUPS, LinkAttempts)
        self._clock = clock

    async def _audit(self, actor: Principal, resource: str, patient_id: str, correlation_id: str) -> None:
        await record_access(
            self._store,
            self._clock,
            actor=actor,
            action="create",
            resource=resource,
            patient_id=patient_id,
            correlation_id=correlation_id,
        )

    # Codes -------------------------------------------------------------------------------------

    async def create_code(self, actor: Principal, patient_id: str, correlation_id: str) -> IssuedCode:
        """A new one-time code for an existing patient (404 otherwise); audited."""
        check_patient_id(patient_id)
        if await Stored(self._store, PATIENTS, PatientDocument).read_or_none(patient_id) is None:
            raise NotFound("No such patient.")
        now = self._clock.now()
        expires = now + CODE_TTL

        async def issue() -> str:
            # A Conflict (2^50 codes: a collision is a curiosity, but never reuse one) draws again.
            code = new_code()
            await self._codes.create(
                LinkCode(
                    id=code_id(code),
                    patient_id=patient_id,
                    created_by=actor.subject,
                    created_at=stamp(now),
                    expires_at=stamp(expires),
                    ttl=int(CODE_TTL.total_seconds()),
                )
            )
            return code

        code = await retry(
            issue,
            on=(Conflict,),
            attempts=5,
            give_up=lambda: Conflict("Could not issue a unique code; retry."),
        )
        await self._audit(actor, f"patients/{patient_id}/link-codes", patient_id, correlation_id)
        return IssuedCode(code=code, expires_at=expires)

    # Redemption --------------------------------------------------------------------------------

    async def redeem(self, principal: Principal, text: str, correlation_id: str) -> str:
        """Link `principal`'s sign-in to the patient the code was issued for; returns the id."""
        if not principal.acts_as_patient_only:
            raise Forbidden("Only a patient's sign-in can be linked to a patient record.")
        code = normalise_code(text)
        if code is None:
            raise ValidationFailed(
                [{"field": "body.code", "message": "must be 10 characters of Crockford base32"}]
            )
        account = account_key(principal)
        existing = await self._links.read_or_none(link_id(principal))
        if existing is None and principal.patient_id:
            raise Conflict("This token already names its patient record (patient_id claim).")
        attempt = await self._reserve_attempt(account)
        try:
            patient_id = await self._consume(code, account, existing)
        except InvalidLinkCode:
            raise  # a wrong, used or expired code keeps its attempt
        except Exception:
            await self._give_back(account, attempt)
            raise
        await self._give_back(account, attempt)
        if existing is None:
            await self._link(principal, patient_id)
        await self._audit(principal, f"patients/{patient_id}/sign-in-link", patient_id, correlation_id)
        return patient_id

    async def _consume(self, code: str, account: str, existing: PatientLink | None) -> str:
        """Mark the code used by `account` (ETag-checked) and return its patient id."""

        async def step() -> str:
            doc = await self._codes.read_or_none(code_id(code))
            if doc is None or parse_stamp(doc.expires_at) <= self._clock.now():
                raise InvalidLinkCode()
            if doc.used_by is not None and doc.used_by != account:
                raise InvalidLinkCode()
            if existing is not None and existing.patient_id != doc.patient_id:
                raise Conflict("This sign-in is already linked to another patient record.")
            if doc.used_by == account:
                return doc.patient_id  # a retry of our own redemption
            try:
                await self._codes.replace(doc.changed(used_by=account, used_at=stamp(self._clock.now())))
                return doc.patient_id
            except (PreconditionFailed, NotFound):
                raise Again() from None  # someone redeemed it (or it expired) meanwhile: look again

        return await retry(
            step,
            attempts=_RETRIES,
            give_up=lambda: Conflict("The code is being redeemed concurrently; retry."),
        )

    async def _link(self, principal: Principal, patient_id: str) -> None:
        doc_id = link_id(principal)
        link = PatientLink(
            id=doc_id,
            patient_id=patient_id,
            issuer=principal.issuer,
            subject=principal.subject,
            linked_at=stamp(self._clock.now()),
        )
        try:
            await self._links.create(link)
        except Conflict:  # linked concurrently by another redemption of this account
            current = await self._links.read(doc_id)
            if current.patient_id != patient_id:
                raise Conflict("This sign-in is already linked to another patient record.") from None

    # Attempt limit -----------------------------------------------------------------------------

    def _recent(self, doc: LinkAttempts | None, now: datetime) -> list[Attempt]:
        horizon = (now - ATTEMPT_WINDOW).timestamp()
        return [a for a in (doc.attempts if doc else []) if a.at > horizon]

    async def _reserve_attempt(self, account: str) -> str:
        doc_id = "link-attempts:" + account

        async def step() -> str:
            now = self._clock.now()
            doc = await self._attempts.read_or_none(doc_id)
            recent = self._recent(doc, now)
            if len(recent) >= MAX_FAILED_ATTEMPTS:
                retry_after = min(a.at for a in recent) + ATTEMPT_WINDOW.total_seconds() - now.timestamp()
                raise TooManyRequests(
                    "Too many wrong codes for this sign-in; try again later.",
                    retry_after=int(retry_after) + 1,
                )
            entry = Attempt(id=uuid.uuid4().hex, at=now.timestamp())
            fresh = LinkAttempts(
                id=doc_id, attempts=[*recent, entry], ttl=int(ATTEMPT_WINDOW.total_seconds())
            )
            try:
                if doc is None:
                    await self._attempts.create(fresh)
                else:
                    fresh = fresh.over(doc)
                    await self._attempts.replace(fresh)
                return entry.id
            except (Conflict, PreconditionFailed, NotFound):
                raise Again() from None

        return await retry(
            step, attempts=_RETRIES, give_up=lambda: Conflict("Too many concurrent attempts; retry.")
        )

    async def _give_back(self, account: str, attempt_id: str) -> None:
        """Best effort: a lost give-back costs the patient one of five attempts for an hour."""
        doc_id = "link-attempts:" + account

        async def step() -> None:
            doc = await self._attempts.read_or_none(doc_id)
            if doc is None:
                return
            try:
                await self._attempts.replace(
                    doc.changed(attempts=[a for a in doc.attempts if a.id != attempt_id])
                )
            except (PreconditionFailed, NotFound):
                raise Again() from None

        with contextlib.suppress(Again):
            await retry(step, attempts=_RETRIES)
