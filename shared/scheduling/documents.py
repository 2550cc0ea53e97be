"""Scheduling's stored documents: providers' calendars (`providers`), taken slots (`slots`,
partition `/providerId`: a document per taken slot, created only if absent) and appointments
(`appointments`, partition `/appointmentId`: an aggregate, its changes write `appointment.*` events
through the outbox)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from shared.kernel.outbox import Aggregate
from shared.kernel.stored import Document
from shared.scheduling.model import Status


class ProviderDocument(Document):
    """A provider's calendar as administrators wrote it (`Provider`), and the casefolded specialty
    its list is keyed by."""

    type: Literal["provider"] = "provider"
    name: str
    specialty: str
    specialty_key: str
    time_zone: str
    slot_minutes: int
    weekly_hours: dict[str, list[list[str]]] = {}
    exceptions: list[dict[str, Any]] = []
    booking_rules: dict[str, int] = {}
    created_at: str | None = None
    updated_at: str | None = None


class SlotDocument(Document):
    """A taken slot: held (`busy-tentative`) by a booking in flight, or `busy`."""

    type: Literal["slot"] = "slot"
    provider_id: str
    start: str
    end: str
    appointment_id: str
    status: Literal["busy-tentative", "busy"] = "busy"
    held_at: str | None = None


class Pending(BaseModel):
    """A reschedule's lease on an appointment: which slot it is taking, since when."""

    id: str
    slot: str
    at: str


class AppointmentDocument(Aggregate):
    """An appointment (FHIR R4 Appointment semantics); a `tombstone` marks the id of a booking
    that died between its hold and its appointment, so its late write cannot land. `moves`
    counts reschedules (the ETag a client sees includes it); `version` every committed change."""

    DROP_NONE: ClassVar[bool] = True
    PARTITION_FIELD: ClassVar[str] = "appointmentId"

    type: Literal["appointment"] = "appointment"
    appointment_id: str
    status: Status
    provider_id: str
    patient_id: str | None = None
    start: str
    end: str | None = None
    reason: str | None = None
    conversation_id: str | None = None
    booked_by: str | None = None
    created: str | None = None
    updated: str | None = None
    moves: int = 0
    previous_start: str | None = None
    pending: Pending | None = None
    tombstone: bool | None = None
