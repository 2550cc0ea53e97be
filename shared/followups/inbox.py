"""The patient portal's inbox (what the `portal` channel delivered) and the dev host's outbox (what
the embedded channel would have sent by SMS or e-mail, with the portal's items beside them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.followups.documents import InboxItem
from shared.followups.model import DevOutbox, DevOutboxItem, Inbox, InboxEntry
from shared.kernel.catalog import OUTBOX
from shared.kernel.documents import Query, where
from shared.kernel.errors import NotFound
from shared.kernel.retry import retry
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.followups.service import Followups

MAX_ITEMS = 100


async def _items(fu: Followups, patient_id: str) -> list[InboxItem]:
    page = await fu.partition.inbox.query(
        Query(conditions=(where("type", "=", "inbox"),)), partition_key=patient_id, max_items=1000
    )
    return sorted(page.items, key=lambda i: (i.created_at, i.id), reverse=True)


def _entry(item: InboxItem) -> InboxEntry:
    return InboxEntry(
        id=item.id,
        purpose=item.purpose,
        subjectId=item.subject_id,
        subject=item.subject,
        text=item.text,
        links=item.links,
        createdAt=item.created_at,
        readAt=item.read_at,
    )


async def inbox_of(fu: Followups, patient_id: str) -> Inbox:
    return Inbox(items=[_entry(i) for i in (await _items(fu, patient_id))[:MAX_ITEMS]])


async def mark_read(fu: Followups, patient_id: str, item_id: str) -> InboxEntry:
    """Mark one of the patient's own items read (another's, or none: 404); again: unchanged."""

    async def step() -> InboxItem:
        item = await fu.partition.inbox.read_or_none(item_id, patient_id)
        if item is None or not item_id.startswith("inbox:"):
            raise NotFound("No such message.")
        if item.read_at is not None:
            return item
        ledger = await fu.partition.ledger(patient_id)
        read = item.changed(read_at=stamp(fu.now()))
        await fu.partition.commit(ledger, [read])
        return read

    return _entry(await retry(step))


async def dev_outbox(fu: Followups, patient_id: str) -> DevOutbox:
    """The embedded channel's records of SMS and e-mail to this patient and their portal items."""
    sent = await fu.store.container(OUTBOX).query(Query(), partition_key=patient_id, max_items=1000)
    items = [_outbox_item(doc) for doc in sent.items]
    items += [
        DevOutboxItem(
            id=f"portal:{i.notification_id}",
            patientId=patient_id,
            purpose=i.purpose,
            subjectId=i.subject_id,
            channel="portal",
            to=None,
            text=i.text,
            links=i.links,
            createdAt=i.created_at,
            status="read" if i.read_at else "delivered",
        )
        for i in await _items(fu, patient_id)
    ]
    return DevOutbox(items=sorted(items, key=lambda i: (i.createdAt, i.id)))


def _outbox_item(doc: dict[str, Any]) -> DevOutboxItem:
    return DevOutboxItem(
        id=str(doc["id"]),
        patientId=str(doc["patientId"]),
        purpose=doc["purpose"],
        subjectId=str(doc["subjectId"]),
        channel=doc["channel"],
        to=doc.get("to"),
        text=str(doc.get("text") or doc.get("subject") or ""),
        links=dict(doc.get("links") or {}),
        createdAt=str(doc["createdAt"]),
        status="sent" if doc.get("status") not in ("delivered", "failed") else doc["status"],
    )
