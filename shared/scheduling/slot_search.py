"""Free-slot search, one page at a time.

The provider's grid is generated lazily from where the page starts, in chunks: each chunk's taken
slots are read with one in-partition range query and subtracted, until the page holds `maxItems`
free slots or the window (at most 62 days) or the booking horizon ends. So the work per request is
bounded by the page, not by the window: a 62-day search over a 5-minute calendar no longer expands
17,000 slots and answers a megabyte in one go. The loop is yielded between chunks, so even a page
that must skip a fully booked month holds the event loop for one chunk at a time.

The continuation token is opaque to clients: base64url JSON naming the last slot returned and a
fingerprint of the search it belongs to, read back through the bounded JSON reader. A token that
is malformed, forged or from another search is a 400.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import hashlib
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from shared.kernel.errors import ValidationFailed
from shared.kernel.json_reader import JsonRejected, read_json
from shared.kernel.times import parse_instant, stamp
from shared.scheduling.model import Calendar

MIN_CHUNK = 64
_TOKEN_VERSION = 1
_MAX_TOKEN_BYTES = 150
Span = tuple[datetime, datetime]


class Taken(Protocol):
    """A taken slot (shared/scheduling/booking.py `TakenSlot`)."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


def free_of(grid: Iterable[Span], taken: Sequence[Taken], calendar: Calendar, last_day: date) -> list[Span]:
    """Grid slots inside the booking horizon that overlap no taken slot (taken may lie on an older
    grid, so this compares intervals, not ids)."""
    ordered = sorted(taken, key=lambda t: t.start)
    starts = [t.start for t in ordered]
    reach: list[datetime] = []  # reach[i] = latest end among ordered[: i + 1]
    for t in ordered:
        reach.append(max(reach[-1], t.end) if reach else t.end)
    free = []
    for start, end in grid:
        if calendar.local_date(start) > last_day:
            break
        i = bisect.bisect_left(starts, end)  # taken slots starting before this slot ends
        if i and reach[i - 1] > start:
            continue
        free.append((start, end))
    return free


async def free_page(
    taken_between: Callable[[datetime, datetime], Awaitable[Sequence[Taken]]],
    calendar: Calendar,
    window: Span,
    *,
    now: datetime,
    after: datetime | None,
    limit: int,
) -> tuple[list[Span], bool]:
    """Up to `limit` free slots of `window` starting after `after`; and whether there are more."""
    start, end = window
    earliest, last_day = calendar.bookable_window(now)
    begin = max(start, earliest)
    if after is not None:
        begin = max(begin, after + timedelta(seconds=1))  # slots start on whole minutes
    grid = iter(calendar.slots_between(begin, end))
    page: list[Span] = []
    while len(page) <= limit:
        # Only what the page still needs (one more than `limit` tells whether there are more).
        chunk = list(itertools.islice(grid, max(limit + 1 - len(page), MIN_CHUNK)))
        if not chunk:
            break
        if calendar.local_date(chunk[0][0]) > last_day:
            break
        page += free_of(chunk, await taken_between(chunk[0][0], chunk[-1][1]), calendar, last_day)
        if calendar.local_date(chunk[-1][0]) > last_day:
            break
        await asyncio.sleep(0)  # a fully booked stretch: let other requests run between chunks
    return page[:limit], len(page) > limit


def _fingerprint(provider_id: str, window: Span) -> str:
    text = "\n".join((provider_id, stamp(window[0]), stamp(window[1])))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def page_token(provider_id: str, window: Span, last: datetime) -> str:
    payload = {"v": _TOKEN_VERSION, "q": _fingerprint(provider_id, window), "a": stamp(last)}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_of(token: str, provider_id: str, window: Span) -> datetime:
    """The last slot start a token names; ValidationFailed (400) unless the token is one we
    issued for this very search."""
    invalid = ValidationFailed(
        [{"field": "query.continuationToken", "message": "is not a continuation of this search"}]
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload: Any = read_json(raw, max_bytes=_MAX_TOKEN_BYTES, max_depth=1)
        if not (
            isinstance(payload, dict)
            and payload.keys() == {"v", "q", "a"}
            and payload["v"] == _TOKEN_VERSION
            and payload["q"] == _fingerprint(provider_id, window)
            and isinstance(payload["a"], str)
        ):
            raise invalid
        last = parse_instant(payload["a"])
    except (binascii.Error, JsonRejected, ValueError):
        raise invalid from None
    if not window[0] <= last < window[1]:
        raise invalid
    return last
