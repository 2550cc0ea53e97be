"""The event history's public module: `record` files an event envelope under its UTC day (the
`history` consumer calls it for every message of the `events` topic), and `events_of_day` /
`events_between` read them back in order of `at` (the KPI rebuild and the Power BI export).

Storage: the `history` container, partitioned by `/day`, id = the event's message id, so filing
the same event twice is a create that meets its own document (idempotent by construction, with no
read first) and a day is one logical partition read in pages along its indexed `sortKey`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.history.documents import HistoryEvent, history_sort_key
from shared.kernel.catalog import HISTORY
from shared.kernel.documents import DocumentStore, Query
from shared.kernel.errors import Conflict
from shared.kernel.times import InstantText, parse_stamp, stamp

PAGE = 500


class Envelope(BaseModel):
    """An `events` topic message body (shared/kernel/outbox.py `EventDocument.envelope`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(min_length=3, max_length=128)
    type: str = Field(min_length=1, max_length=100)
    aggregate_id: str = Field(alias="aggregateId", min_length=1, max_length=100)
    version: int = Field(ge=1)
    at: InstantText
    data: dict[str, Any] = {}

    @property
    def n(self) -> int:
        """The event's place in its write (the `<n>` of `<aggregate id>:<version>.<n>`)."""
        _, _, place = self.id.rpartition(":")
        version, _, n = place.partition(".")
        if version != str(self.version) or not n.isdigit():
            raise ValueError(f"message id {self.id!r} does not name version {self.version}")
        return int(n)


def parse_envelope(body: bytes | str | dict[str, Any]) -> Envelope:
    """The envelope of a message body (ValueError / ValidationError for anything else)."""
    if isinstance(body, dict):
        return Envelope.model_validate(body)
    return Envelope.model_validate_json(body)


def day_of(at: str) -> str:
    return parse_stamp(at).date().isoformat()


async def record(store: DocumentStore, envelope: Envelope) -> bool:
    """File the event under its day; False when it was filed already (a redelivery, a replay)."""
    at = stamp(parse_stamp(envelope.at))
    doc = HistoryEvent(
        id=envelope.id,
        day=day_of(at),
        sort_key=history_sort_key(at, envelope.aggregate_id, envelope.version, envelope.n),
        event_type=envelope.type,
        aggregate_id=envelope.aggregate_id,
        version=envelope.version,
        n=envelope.n,
        at=at,
        data=envelope.data,
    )
    try:
        await store.container(HISTORY).create(doc.body())
    except Conflict:
        return False
    return True


async def events_of_day(store: DocumentStore, day: date | str) -> AsyncIterator[dict[str, Any]]:
    """The envelopes of one UTC day in order of `at` (ties: by aggregate, then as written), a page
    of single-partition reads at a time."""
    key = day if isinstance(day, str) else day.isoformat()
    container = store.container(HISTORY)
    query = Query(order_by=(("sortKey", False),))
    continuation: str | None = None
    while True:
        page = await container.query(query, partition_key=key, max_items=PAGE, continuation=continuation)
        for item in page.items:
            yield HistoryEvent.model_validate(item).envelope()
        continuation = page.continuation
        if not continuation:
            return


async def events_between(store: DocumentStore, first: date, last: date) -> AsyncIterator[dict[str, Any]]:
    """The envelopes of the UTC days `first` … `last` (inclusive), day after day, each in order."""
    day = first
    while day <= last:
        async for envelope in events_of_day(store, day):
            yield envelope
        day += timedelta(days=1)


__all__ = ["Envelope", "day_of", "events_between", "events_of_day", "parse_envelope", "record"]
