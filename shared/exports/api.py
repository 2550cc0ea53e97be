"""The exports capability's public module: the Power BI feed (a star schema as Parquet, one
folder per table and `date=YYYY-MM-DD/` per day; docs/POWERBI.md)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from shared.exports.export import MAX_DAYS, EventSource, ExportResult, HistoryEvents, PowerBiExport, day_range
from shared.exports.tables import DIMENSIONS, FACTS, Table

if TYPE_CHECKING:
    from shared.runtime import Runtime

__all__ = [
    "DIMENSIONS",
    "FACTS",
    "MAX_DAYS",
    "EventSource",
    "ExportResult",
    "HistoryEvents",
    "PowerBiExport",
    "Table",
    "day_range",
    "export_days",
    "yesterday",
]


def yesterday(runtime: Runtime) -> date:
    return runtime.clock.now().date() - timedelta(days=1)


async def export_days(runtime: Runtime, first: date, last: date) -> ExportResult:
    """Export `first`..`last` (UTC days) from the event history to the runtime's exports store."""
    from shared.exports.dimensions import current_dimensions

    store = runtime.store
    return await PowerBiExport(
        HistoryEvents(store), runtime.exports, lambda: current_dimensions(store)
    ).export(first, last)
