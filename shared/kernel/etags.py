"""Entity tags and `If-Match` (RFC 9110 §8.8.3, §13.1.1): what every conditional write checks.

Every document the API returns carries an `ETag`, a strong entity-tag (quoted, no `W/`); a
write that receives `If-Match` performs only if the tag it names is still current, else answers
412 and changes nothing. Without `If-Match` a write is unconditional, as before.

Which version a tag names is the owner's choice, and each resource names the part a client's
write replaces, so that changes the client does not write cannot fail it:

* most documents: the store's own `_etag` (Cosmos DB and the embedded store quote it already);
* an agent's profile (`PUT /api/manage/agents/{id}`): `"profile-<profileVersion>"`, bumped only by
  administrators' writes, not by the presence and load routing keeps on the same document;
* an agent's presence (`PUT /api/agents/me/presence`): `"presence-<presenceVersion>"`, bumped only
  by the agent's own presence changes;
* an appointment: a hash of the appointment as served (and its version), so the reschedule
  lease and the reclaim rewrites that leave it as it was do not change it.

A check and the write it guards happen under the document's store ETag (a lost race re-reads and
checks again), so with `If-Match` a lost update is impossible.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from shared.kernel.errors import PreconditionFailed, ValidationFailed

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3).
_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_LIST = re.compile(rf"^\s*{_TAG}\s*(?:,\s*{_TAG}\s*)*$")
_EACH = re.compile(_TAG)


def entity_tag(opaque: str) -> str:
    """A strong entity-tag for an opaque value (quoted unless it is already)."""
    if len(opaque) >= 2 and opaque[0] == opaque[-1] == '"':
        return opaque
    return f'"{opaque}"'


def stored_etag(item: Any) -> str:
    """The entity-tag of a document by the store's own version (a stored JSON item, or a typed
    document that carries its ETag: shared/kernel/stored.py)."""
    return entity_tag(str(item["_etag"] if isinstance(item, dict) else item.etag))


def version_etag(kind: str, version: int) -> str:
    """The entity-tag of one versioned part of a document (an agent's profile or presence)."""
    return f'"{kind}-{version}"'


def content_etag(*parts: Any) -> str:
    """The entity-tag of a representation: a hash of what is served, so it changes exactly when
    what a reader sees changes."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode())
    return f'"{digest.hexdigest()[:32]}"'


class IfMatchFailed(PreconditionFailed):
    """The client's precondition is false: answered as it is, never retried (a store-level
    PreconditionFailed is a lost race the service retries)."""


@dataclass(frozen=True)
class IfMatch:
    """A request's `If-Match`: `*` (the resource must exist) or a list of entity-tags, compared
    strongly (RFC 9110 §13.1.1), so a weak tag never matches."""

    any: bool
    tags: frozenset[str]

    @classmethod
    def parse(cls, header: str | None) -> IfMatch | None:
        """None when the request has no `If-Match` (an unconditional write); a header that is
        neither `*` nor a list of quoted entity-tags is a 400, never silently ignored."""
        if header is None:
            return None
        # By hand: the header's grammar is two lines, and no library we ship parses it.
        if header.strip() == "*":
            return cls(any=True, tags=frozenset())
        if not _LIST.match(header):
            raise ValidationFailed(
                [{"field": "header.If-Match", "message": 'must be * or a list of entity tags ("…")'}]
            )
        return cls(any=False, tags=frozenset(t for t in _EACH.findall(header) if not t.startswith("W/")))

    def check(self, current: str | None, what: str) -> None:
        """412 unless the resource's current entity-tag (None: it does not exist) matches."""
        if current is None:
            raise IfMatchFailed(f"The {what} does not exist (If-Match).")
        if not self.any and current not in self.tags:
            raise IfMatchFailed(f"The {what} changed since you read it (If-Match).")


def check_if_match(if_match: IfMatch | None, current: str | None, what: str) -> None:
    """`IfMatch.check`, when the request has an `If-Match`."""
    if if_match is not None:
        if_match.check(current, what)
