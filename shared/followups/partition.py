"""One patient's follow-ups in the `notifications` container: reads, and every write as one
transactional batch with a replace of the patient's ledger (its ETag guards the partition; its
events go with the change). A lost race raises `PreconditionFailed`: callers re-read and retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.followups.documents import (
    AppointmentPlan,
    InboxItem,
    Ledger,
    NotificationRecord,
    ledger_id,
    plan_id,
    record_id,
)
from shared.kernel.catalog import NOTIFICATIONS
from shared.kernel.documents import Query, where
from shared.kernel.errors import Conflict, PreconditionFailed
from shared.kernel.outbox import Aggregates
from shared.kernel.stored import Document, Stored

if TYPE_CHECKING:
    from shared.kernel.documents import DocumentStore


class Partition:
    def __init__(self, store: DocumentStore) -> None:
        self._ledgers = Aggregates(store, NOTIFICATIONS, Ledger)
        self.records = Stored(store, NOTIFICATIONS, NotificationRecord)
        self.plans = Stored(store, NOTIFICATIONS, AppointmentPlan)
        self.inbox = Stored(store, NOTIFICATIONS, InboxItem)

    async def ledger(self, patient_id: str) -> Ledger:
        """The patient's ledger as stored, or a new one (written by the first `commit`)."""
        found = await self._ledgers.read_or_none(ledger_id(patient_id), patient_id)
        return found if found is not None else Ledger(id=ledger_id(patient_id), patient_id=patient_id)

    async def record(self, patient_id: str, notification_id: str) -> NotificationRecord | None:
        return await self.records.read_or_none(record_id(notification_id), patient_id)

    async def plan(self, patient_id: str, appointment_id: str) -> AppointmentPlan | None:
        return await self.plans.read_or_none(plan_id(appointment_id), patient_id)

    async def pending_reminders(self, patient_id: str) -> list[NotificationRecord]:
        """Reminders of this patient still to go (they hold their place against surveys)."""
        query = Query(
            conditions=(
                where("type", "=", "notification"),
                where("purpose", "=", "reminder"),
                where("status", "in", ["scheduled", "sending"]),
            ),
        )
        page = await self.records.query(query, partition_key=patient_id, max_items=500)
        return list(page.items)

    async def commit(self, ledger: Ledger, upserts: Sequence[Document]) -> Ledger:
        """Write `upserts` and the ledger (with its pending events) in one batch, conditional on
        the ledger's ETag (or on its absence for a new one)."""
        if ledger.stored:
            return await self._ledgers.replace(ledger, upserts=upserts)
        try:
            return await self._ledgers.create(ledger, upserts=upserts)
        except Conflict:
            raise PreconditionFailed("the ledger was created concurrently") from None
