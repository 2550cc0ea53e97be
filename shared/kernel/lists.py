"""Paged lists: per-partition list indexes, and the continuation tokens the API hands out.

Cosmos DB cannot page a cross-partition ORDER BY (`shared/kernel/documents.py`), and the
aggregates behind our lists are partitioned by their own id (providers, appointments, agents,
conversations: point reads and ETag writes on every command; a later issue keeps one aggregate per
partition with its outbox). So every paged list reads one partition of the `lists` container,
partitioned by `/list`: one small entry per member, ordered by the indexed `sortKey`.

This module is the generic walker and token envelope; each capability names its own lists and
entries (`list` key → members, ordered by `sortKey`): scheduling's providers and appointments
(shared/scheduling/index.py), routing's agents (shared/routing/directory.py), conversations' live
conversations per queue (shared/conversations/store.py).

Entries carry ids and the sort key, never PHI. A reader re-reads each member (point reads, a few at
a time) and keeps it only if it still belongs where the entry says (`load` returns None
otherwise), so a stale or dangling entry costs a read and is never shown. Writers therefore add
an entry *before* the change that makes a member belong and remove it *after* the change that
makes it leave: a crash in between leaves an entry readers skip, never a member missing from its
list. (A write across containers cannot be atomic; this order makes the crash harmless.)

Tokens handed to API callers wrap the store's own (at most ~1 KB) in an envelope bound to the
list and its filter: opaque, bounded, and a malformed or foreign one is a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from shared.kernel.catalog import LISTS
from shared.kernel.documents import Condition, DocumentStore, Query
from shared.kernel.errors import NotFound, ValidationFailed
from shared.kernel.json_reader import read_json
from shared.kernel.stored import Document, Stored

TOKEN_CHARS = 2000  # what the list query models accept; the board's two cursors get twice that
# A page re-reads its members a few at a time: enough to hide Cosmos latency, few enough to keep
# a burst of list calls from starving the hot paths of RU.
LOAD_CONCURRENCY = 16
# A page stops after examining this many entries per requested item even if short (entries whose
# member left, or filtered out): a page may hold fewer than maxItems; only the token says more.
SCAN_FACTOR = 4

T = TypeVar("T")

_TOKEN_VERSION = 1
# What an unsealed token may be: the longest a caller may send (the board's two cursors) decoded,
# and one level more than the deepest we seal (the board's `{"cv": {"at", "c"}, ...}`).
_TOKEN_BYTES = 2 * TOKEN_CHARS
_TOKEN_DEPTH = 3


# Entries -----------------------------------------------------------------------------------------


class ListEntry(Document):
    """A list entry: `ref` is the member's id (its own partition key), `sortKey` its place; a
    capability may note what its readers check (`queueId` of a live conversation, `start` of an
    appointment). Ids and the sort key only, never PHI."""

    DROP_NONE: ClassVar[bool] = True

    list: str
    sort_key: str
    ref: str
    queue_id: str | None = None
    start: str | None = None


def entry(
    list_key: str,
    ref: str,
    sort_key: str,
    *,
    id: str | None = None,
    queue_id: str | None = None,
    start: str | None = None,
) -> ListEntry:
    return ListEntry(id=id or ref, list=list_key, sort_key=sort_key, ref=ref, queue_id=queue_id, start=start)


async def add(store: DocumentStore, *entries: ListEntry) -> None:
    """Upsert entries (idempotent: a retried command writes the same ones)."""
    stored = Stored(store, LISTS, ListEntry)
    for item in entries:
        await stored.upsert(item)


async def remove(store: DocumentStore, list_key: str, entry_id: str) -> None:
    with contextlib.suppress(NotFound):
        await store.container(LISTS).delete(entry_id, list_key)


# Reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One list of a walk; `position` orders the segments and survives in tokens (a walk over
    queues names them by priority and id, so a queue added between two pages is no trouble).
    `descending` reads the list newest (highest `sortKey`) first."""

    position: str
    list_key: str
    conditions: tuple[Condition, ...] = ()
    descending: bool = False


async def walk(
    store: DocumentStore,
    segments: Sequence[Segment],
    cursor: dict[str, Any] | None,
    max_items: int,
    load: Callable[[ListEntry, Segment], Awaitable[T | None]],
) -> tuple[list[T], dict[str, Any] | None]:
    """Up to `max_items` members from `segments` in order (each in `sortKey` order), resuming at
    `cursor`; returns them and the cursor of the next page (None at the end). Every query reads
    one partition and asks for no more entries than the page still needs, so the cursor sits
    right after the last entry examined: nothing is skipped or repeated."""
    lists = Stored(store, LISTS, ListEntry)
    ordered = sorted(segments, key=lambda s: s.position)
    at, inner = (cursor["at"], cursor["c"]) if cursor else ("", None)
    remaining = [s for s in ordered if s.position >= at]
    if inner is not None and (not remaining or remaining[0].position != at):
        inner = None  # that list is gone from the walk (e.g. a queue renumbered): start the next
    rows: list[T] = []
    examined = 0
    budget = SCAN_FACTOR * max_items
    for index, segment in enumerate(remaining):
        while True:
            page = await lists.query(
                Query(segment.conditions, (("sortKey", segment.descending),)),
                partition_key=segment.list_key,
                max_items=max_items - len(rows),
                continuation=inner,
            )
            examined += len(page.items)
            rows += [row for row in await _load_all(page.items, segment, load) if row is not None]
            inner = page.continuation
            if inner is None:
                break
            if len(rows) >= max_items or examined >= budget:
                return rows, {"at": segment.position, "c": inner}
        following = remaining[index + 1 :]
        if not following:
            return rows, None
        if len(rows) >= max_items or examined >= budget:
            return rows, {"at": following[0].position, "c": None}
    return rows, None


async def _load_all(
    entries: Sequence[ListEntry], segment: Segment, load: Callable[[ListEntry, Segment], Awaitable[T | None]]
) -> list[T | None]:
    gate = asyncio.Semaphore(LOAD_CONCURRENCY)

    async def one(item: ListEntry) -> T | None:
        async with gate:
            return await load(item, segment)

    return list(await asyncio.gather(*(one(item) for item in entries)))


# Tokens -------------------------------------------------------------------------------------------


def _digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def seal(scope: str, state: dict[str, Any] | None, *, limit: int = TOKEN_CHARS) -> str | None:
    """The API token for `state` (None: no more pages). `scope` names the list and its filter, so
    a token only fits the request that produced it."""
    if state is None:
        return None
    body = json.dumps({"v": _TOKEN_VERSION, "s": _digest(scope), **state}, separators=(",", ":"))
    token = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    if len(token) > limit:
        # Store tokens are capped at ~1 KB (the Cosmos adapter asks for it): this is a bug.
        raise RuntimeError(f"continuation token of {len(token)} characters exceeds {limit}")
    return token


def unseal(scope: str, token: str | None, *, field: str = "query.continuationToken") -> dict[str, Any] | None:
    """The state inside a token this list handed out; anything else is a 400."""
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # A token comes back from outside: the bounded reader (ours are at most three levels deep
        # and no longer than the board's two cursors), so a deeply nested one is a 400 too.
        decoded = read_json(raw, max_bytes=_TOKEN_BYTES, max_depth=_TOKEN_DEPTH)
    except (binascii.Error, ValueError):
        decoded = None
    if (
        not isinstance(decoded, dict)
        or decoded.pop("v", None) != _TOKEN_VERSION
        or decoded.pop("s", None) != _digest(scope)
    ):
        raise ValidationFailed([{"field": field, "message": "is not a token this list handed out"}])
    return decoded


async def read_page(
    store: DocumentStore,
    scope: str,
    segments: Sequence[Segment],
    token: str | None,
    max_items: int,
    load: Callable[[ListEntry, Segment], Awaitable[T | None]],
) -> tuple[list[T], str | None]:
    """One page of a list for an API caller: unseal the caller's token, walk, seal the next one."""
    rows, following = await walk(store, segments, cursor_of(unseal(scope, token)), max_items, load)
    return rows, seal(scope, following)


def cursor_of(value: Any, field: str = "query.continuationToken") -> dict[str, Any] | None:
    """A walk cursor out of an unsealed token, checked: `{"at": str, "c": str | None}`."""
    if value is None:
        return None
    if (
        isinstance(value, dict)
        and set(value) == {"at", "c"}
        and isinstance(value["at"], str)
        and (value["c"] is None or isinstance(value["c"], str))
    ):
        return value
    raise ValidationFailed([{"field": field, "message": "is not a token this list handed out"}])
