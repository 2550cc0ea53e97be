"""The Power BI export: for each day of a range, the facts of that day's events and the dimensions
as they are now, as Parquet files in the exports store (`shared.kernel.exports`).

Idempotent: exporting a day again replaces its files, so a re-run after a late event or a rebuild
leaves one file per table and day. Events come from an `EventSource`: the event history
(`HistoryEvents`) in the app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from shared.exports import tables
from shared.exports.tables import Row, Table
from shared.kernel.documents import DocumentStore
from shared.kernel.exports import Exports
from shared.kernel.times import stamp

log = logging.getLogger("psc.exports")

# One call exports at most this many days (a quarter, as the KPI API's longest range).
MAX_DAYS = 93


class EventSource(Protocol):
    def between(self, start: datetime, end: datetime) -> AsyncIterator[Mapping[str, Any]]:
        """Envelopes of the events that happened in [start, end), in any order."""
        ...


@dataclass
class HistoryEvents:
    """The durable event history (shared/history: every event of the `events` topic filed under
    its UTC day by its own consumer), read a day partition at a time: the same history the KPI
    rebuild reads, kept as long as the history is (outbox event documents expire in 14 days)."""

    store: DocumentStore

    async def between(self, start: datetime, end: datetime) -> AsyncIterator[Mapping[str, Any]]:
        from shared.history.api import events_between

        first, last = start.date(), (end - timedelta(microseconds=1)).date()
        async for envelope in events_between(self.store, first, last):
            if stamp(start) <= envelope["at"] < stamp(end):
                yield envelope


@dataclass
class ExportResult:
    days: list[date]
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def day_range(first: date, last: date) -> list[date]:
    if last < first:
        raise ValueError("the last day is before the first")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days per export")
    return [first + timedelta(days=n) for n in range(days)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


class PowerBiExport:
    def __init__(
        self,
        source: EventSource,
        exports: Exports,
        dimensions: Callable[[], Any],
        write: Callable[[Table, list[Row]], bytes] | None = None,
    ) -> None:
        """`dimensions`: an async callable returning {table name: {id: row}} for queues, agents
        and providers as they are now. `write`: rows to file bytes (default: Parquet by DuckDB,
        imported only here)."""
        self._source = source
        self._exports = exports
        self._dimensions = dimensions
        self._write = write

    def _bytes(self, table: Table, rows: list[Row]) -> bytes:
        if self._write is not None:
            return self._write(table, rows)
        from shared.exports.parquet import parquet_bytes

        return parquet_bytes(table, rows)

    async def _put(
        self, result: ExportResult, table: Table, rows: list[Row], day: date | None = None
    ) -> None:
        name = table.file(day)
        await self._exports.write(name, self._bytes(table, rows), "application/vnd.apache.parquet")
        result.files.append(name)
        result.rows[table.name] = result.rows.get(table.name, 0) + len(rows)

    async def export(self, first: date, last: date) -> ExportResult:
        """Write every table for the days `first`..`last` (UTC, both included) and the dimensions."""
        days = day_range(first, last)
        result = ExportResult(days)
        for day in days:
            # The day and its lookback, read for each day: memory stays one window however long
            # the range (a day's events are read 1 + LOOKBACK times).
            start, end = _midnight(day) - tables.LOOKBACK, _midnight(day + timedelta(days=1))
            events = [event async for event in self._source.between(start, end)]
            await self._put(result, tables.CONVERSATIONS, tables.conversation_rows(events, day), day)
            await self._put(result, tables.APPOINTMENTS, tables.appointment_rows(events, day), day)
            await self._put(result, tables.NOTIFICATIONS, tables.notification_rows(events, day), day)
            await self._put(result, tables.SURVEYS, tables.survey_rows(events, day), day)
            await self._put(result, tables.DATES, [tables.date_row(day)], day)
        current = await self._dimensions()
        for table in (tables.QUEUES, tables.AGENTS, tables.PROVIDERS):
            await self._put(result, table, tables.dimension_rows(table, current.get(table.name, {})))
        log.info("power bi export written", extra={"days": len(days), "rows": result.rows})
        return result
