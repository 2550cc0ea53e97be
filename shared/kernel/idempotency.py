"""The one idempotency record: what lets a retried request (a webhook delivery with the same
`webhook-id`, a booking with the same `Idempotency-Key`, a redelivered message a handler must not
apply twice) get the first answer instead of doing the work again.

One document shape in `lookups` (partition key `/id`, point operations only):
`{id, type, createdAt, ttl, fingerprint?, answer?}`, where

* `id` = `<scope prefix>:<sha256 of the key parts joined by newlines>`: the key itself (a client's
  Idempotency-Key, a sender's message id) is never stored, and the parts include whatever makes
  two callers' keys different (the caller's subject for Idempotency-Key);
* `ttl` is the scope's, written with every version of the record (Cosmos DB expires it; the
  embedded store too);
* `fingerprint` = sha256 of the request's meaningful parts (`fingerprint()`), so the same key
  with another request is told apart (a 409);
* `answer` is what the first request answered, once it has (a record without one is a request
  still running, or one that died mid-way).

A claim is a create, so of any number of concurrent first requests exactly one wins.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.kernel.catalog import LOOKUPS
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.stored import Document, Stored
from shared.kernel.times import stamp


class IdempotencyRecord(Document):
    type: str
    created_at: str | None = None
    ttl: int
    fingerprint: str | None = None
    answer: dict[str, Any] | None = None


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def fingerprint(*parts: str) -> str:
    """What tells two requests under one key apart."""
    return digest(*parts)


@dataclass(frozen=True)
class Scope:
    """One kind of idempotent request: the record's id prefix, its `type` and how long it lives."""

    prefix: str
    type: str
    ttl: timedelta

    def record_id(self, *key: str) -> str:
        return f"{self.prefix}:{digest(*key)}"


class Idempotency:
    def __init__(self, store: DocumentStore, clock: Clock, scope: Scope) -> None:
        self._records = Stored(store, LOOKUPS, IdempotencyRecord)
        self._clock = clock
        self.scope = scope

    def _record(
        self, record_id: str, *, fingerprint: str | None, answer: dict[str, Any] | None
    ) -> IdempotencyRecord:
        return IdempotencyRecord(
            id=record_id,
            type=self.scope.type,
            created_at=stamp(self._clock.now()),
            ttl=int(self.scope.ttl.total_seconds()),
            fingerprint=fingerprint,
            answer=answer,
        )

    async def claim(
        self, *key: str, fingerprint: str | None = None, answer: dict[str, Any] | None = None
    ) -> IdempotencyRecord | None:
        """Create the record; None when it exists already (another request holds the key)."""
        try:
            return await self._records.create(
                self._record(self.scope.record_id(*key), fingerprint=fingerprint, answer=answer)
            )
        except Conflict:
            return None

    async def read(self, *key: str) -> IdempotencyRecord | None:
        return await self._records.read_or_none(self.scope.record_id(*key))

    async def settle(
        self, *key: str, answer: dict[str, Any], fingerprint: str | None = None
    ) -> IdempotencyRecord:
        """Record the first request's answer (a replay gets it from now on)."""
        return await self._records.upsert(
            self._record(self.scope.record_id(*key), fingerprint=fingerprint, answer=answer)
        )

    async def release(self, *key: str, etag: str | None = None) -> None:
        """Give the key back (the request failed and did nothing): a retry starts afresh. With
        `etag`, only the version the caller created."""
        record_id = self.scope.record_id(*key)
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._records.delete(record_id, etag=etag)


def answer_of(record: IdempotencyRecord | None) -> dict[str, Any] | None:
    return None if record is None or record.answer is None else dict(record.answer)
