"""The KPI capability's public module: the consumer's handler (`apply_kpi_event`), the
supervisors' queries (`kpi_range`, `kpi_live`), the live tiles, and the rebuild."""

from __future__ import annotations

from shared.history.api import Envelope, parse_envelope
from shared.kernel.documents import DocumentStore
from shared.kpis.aggregation import MemoryLedger, StoredLedger, apply_event
from shared.kpis.live import kpi_live, push_tiles
from shared.kpis.queries import kpi_range
from shared.kpis.rebuild import Rebuilt, rebuild


async def apply_kpi_event(store: DocumentStore, envelope: Envelope, short_abandon_seconds: float) -> int:
    """Apply one event of the `events` topic to the buckets (at most once per document); the
    number of documents changed (0 for a redelivery, a replay or an event no KPI counts)."""
    return await apply_event(StoredLedger(store), envelope, short_abandon_seconds)


__all__ = [
    "Envelope",
    "MemoryLedger",
    "Rebuilt",
    "StoredLedger",
    "apply_kpi_event",
    "kpi_live",
    "kpi_range",
    "parse_envelope",
    "push_tiles",
    "rebuild",
]
