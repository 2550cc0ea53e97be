"""Slot holds: the slot document is the unit of consistency (see shared/scheduling/booking.py).
Taking a slot is a create that of any number of racers exactly one wins; a hold whose writer died
is reclaimed only after the dead writer's appointment write is made impossible."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from shared.kernel.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
)
from shared.kernel.retry import Again, retry
from shared.kernel.times import parse_stamp, stamp
from shared.scheduling.documents import AppointmentDocument, SlotDocument
from shared.scheduling.model import (
    slot_id,
)
from shared.scheduling.providers import _RETRIES, HOLD, TAKEN, ProviderCalendars, _is_active, _now_z

log = logging.getLogger("psc.scheduling")


class SlotHolds(ProviderCalendars):
    async def _check_overlap(
        self, provider_id: str, slot: tuple[datetime, datetime], appointment_id: str
    ) -> None:
        """Refuse a slot overlapping a booking made on another grid (the provider changed
        `slotMinutes` or hours since). The slot document's id is what guarantees exclusivity on
        one grid; this is the booking path's only query, inside one partition."""
        wanted = slot_id(provider_id, slot[0])
        for other in await self.taken(provider_id, slot[0], slot[1]):
            if other.id == wanted:
                continue  # `_claim` decides about the slot itself
            current = await self._slots.read_or_none(other.id, provider_id)
            if current is None or current.appointment_id == appointment_id:
                continue
            if not await self._reclaim(current):
                raise Conflict(TAKEN)

    async def _claim(
        self, provider_id: str, slot: tuple[datetime, datetime], appointment_id: str
    ) -> SlotDocument:
        """Create the slot's hold for `appointment_id`; 409 if another appointment holds it."""
        hold = SlotDocument(
            id=slot_id(provider_id, slot[0]),
            provider_id=provider_id,
            start=stamp(slot[0]),
            end=stamp(slot[1]),
            appointment_id=appointment_id,
            status="busy-tentative",
            held_at=_now_z(self._clock),
        )

        async def step() -> SlotDocument:
            try:
                return await self._slots.create(hold)
            except Conflict:
                pass
            current = await self._slots.read_or_none(hold.id, provider_id)
            if current is None:
                raise Again()  # released in between: try again
            if current.appointment_id == appointment_id:
                return current  # ours: a retry of the same operation resumes
            if not await self._reclaim(current):
                raise Conflict(TAKEN)
            raise Again()  # reclaimed: take it now

        return await retry(step, attempts=3, give_up=lambda: Conflict(TAKEN))

    async def _reclaim(self, slot: SlotDocument) -> bool:
        """Delete a slot document that no live appointment will ever stand on; True if it is gone."""
        now = self._clock.now()
        if slot.status == "busy-tentative" and slot.held_at and parse_stamp(slot.held_at) + HOLD > now:
            return False  # a booking in flight
        holder_id = slot.appointment_id

        async def step() -> bool:
            """True when no live appointment will ever stand on the slot."""
            holder = await self._appointments.read_or_none(holder_id)
            if holder is None:
                # Its booking died between hold and appointment: make the late create impossible.
                try:
                    await self._appointments.create(
                        AppointmentDocument(
                            id=holder_id,
                            appointment_id=holder_id,
                            status="entered-in-error",
                            tombstone=True,
                            provider_id=slot.provider_id,
                            start=slot.start,
                            created=stamp(now),
                        )
                    )
                except Conflict:
                    raise Again() from None  # it was written after all: look at it
                return True
            if not _is_active(holder):
                return True  # cancelled or entered-in-error: it stands on no slot
            if holder.start == slot.start and holder.provider_id == slot.provider_id:
                if slot.status == "busy-tentative":
                    await self._confirm(slot)  # the writer died after booking: finish its work
                return False
            pending = holder.pending
            if pending and pending.slot == slot.id and parse_stamp(pending.at) + HOLD > now:
                return False  # a reschedule onto this slot in flight
            # An appointment that stands elsewhere: its move here died, or its old slot was not
            # released. Rewriting it changes its ETag, so a slow move can no longer land here.
            revoked = holder.changed(pending=None)
            try:
                await self._appointments.replace(revoked)
            except (PreconditionFailed, NotFound):
                raise Again() from None
            return True

        try:
            free = await retry(step, attempts=_RETRIES)
        except Again:
            return False  # still contended: the caller treats the slot as taken
        if not free:
            return False
        # NotFound / 412: released or reclaimed by someone else meanwhile; the caller looks again.
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._slots.delete(slot.id, slot.provider_id, etag=slot.etag)
        log.info("stale slot hold reclaimed", extra={"appointment_id": holder_id})
        return True

    async def _confirm(self, held: SlotDocument) -> None:
        """busy-tentative → busy. Best effort: a hold whose appointment stands on it counts as
        taken either way; the status only lets searches skip the appointment read."""
        if held.status == "busy":
            return
        with contextlib.suppress(PreconditionFailed, NotFound):
            await self._slots.replace(held.changed(status="busy"))

    async def _release(self, provider_id: str, start: str, appointment_id: str) -> None:
        """Delete the slot document at `start` if it still names this appointment."""
        sid = slot_id(provider_id, parse_stamp(start))
        current = await self._slots.read_or_none(sid, provider_id)
        if current is None or current.appointment_id != appointment_id:
            return
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._slots.delete(sid, provider_id, etag=current.etag)
