"""What the follow-ups' handlers stand on: the ports, the settings they need (passed in, never
read here), and the facts of a patient and an appointment a notification is made of."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.auth.principal import Principal
from shared.followups.links import Links
from shared.followups.partition import Partition
from shared.followups.planner import Quiet
from shared.followups.policies import Policies
from shared.kernel.catalog import FOLLOWUPS_QUEUE, PROVIDERS
from shared.kernel.messages import OutgoingMessage
from shared.kernel.stored import Stored
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.followups.model import ReminderPolicy
    from shared.kernel.clock import Clock
    from shared.kernel.documents import DocumentStore
    from shared.kernel.messages import MessageBus
    from shared.kernel.notify import Notifier
    from shared.notifications.api import AppointmentFacts, ChannelPlan, ContactPoints

# Who reads a patient's record to send them a follow-up (the audit trail names it).
FOLLOWUPS_ACTOR = Principal(subject="followups", name=None, roles=frozenset(), provider="system")


@dataclass(frozen=True)
class PatientFacts:
    """What a follow-up needs of a patient: their clock, language, quiet hours and contacts."""

    patient_id: str
    zone: str
    language: str | None
    quiet: Quiet | None
    contacts: ContactPoints


@dataclass
class Followups:
    store: DocumentStore
    bus: MessageBus
    clock: Clock
    notifier: Notifier | None
    link_key: str | None
    public_base_url: str
    portal_base_url: str
    correlation_id: str = "followups"

    def __post_init__(self) -> None:
        self.partition = Partition(self.store)
        self.policies = Policies(self.store)
        self.links = Links(self.store, self.link_key)

    def now(self) -> datetime:
        return self.clock.now()

    async def patient(self, patient_id: str, policy: ReminderPolicy | None = None) -> PatientFacts | None:
        """The patient's facts (the read is audited), or None when the record is gone. Quiet
        hours: the patient's own, else the policy's."""
        from shared.kernel.errors import NotFound
        from shared.notifications.api import ContactPoints
        from shared.patients.api import PatientRegistry

        try:
            stored = await PatientRegistry(self.store, self.clock).read(
                FOLLOWUPS_ACTOR, patient_id, self.correlation_id
            )
        except NotFound:
            return None
        doc = stored.item
        own = doc.quiet_hours
        quiet = (
            Quiet(own["start"], own["end"])
            if own
            else (Quiet(policy.quietHours.start, policy.quietHours.end) if policy is not None else None)
        )
        return PatientFacts(
            patient_id=patient_id,
            zone=doc.time_zone or "UTC",
            language=doc.language,
            quiet=quiet,
            contacts=ContactPoints.of(doc.body()),
        )

    async def appointment_facts(
        self, provider_id: str, start: str, patient_zone: str | None
    ) -> AppointmentFacts:
        from shared.kernel.times import parse_stamp
        from shared.notifications.api import AppointmentFacts
        from shared.scheduling.api import ProviderDocument

        provider = await Stored(self.store, PROVIDERS, ProviderDocument).read_or_none(provider_id)
        name = provider.name if provider is not None else "your clinic"
        zone = provider.time_zone if provider is not None else "UTC"
        return AppointmentFacts(
            provider_name=name, start=parse_stamp(start), provider_zone=zone, patient_zone=patient_zone
        )

    async def schedule(
        self, notification_id: str, patient_id: str, due: datetime, *, attempt: int = 1
    ) -> int | None:
        """Put a send on the `followups` queue for `due` (now: enqueued at once, no sequence);
        `attempt` 2 is a fallback's send (its own message id, so duplicate detection keeps it)."""
        body = {"notificationId": notification_id, "patientId": patient_id, "due": stamp(due)}
        message = OutgoingMessage(
            body=json.dumps(body, separators=(",", ":")).encode(),
            message_id=send_message_id(notification_id, stamp(due), attempt),
            subject="followup.send",
            correlation_id=self.correlation_id,
        )
        if due <= self.now():
            await self.bus.send(FOLLOWUPS_QUEUE, message)
            return None
        return await self.bus.schedule(FOLLOWUPS_QUEUE, message, due)

    async def cancel(self, sequence_number: int | None) -> None:
        if sequence_number is not None:
            await self.bus.cancel_scheduled(FOLLOWUPS_QUEUE, sequence_number)


def send_message_id(notification_id: str, due: str, attempt: int = 1) -> str:
    """A send's message id: one per notification, due time and attempt (a survey moved by the cap
    and a fallback are new sends), hashed to stay within Service Bus's 128 characters."""
    return "fu:" + hashlib.sha256(f"{notification_id}\n{due}\n{attempt}".encode()).hexdigest()[:40]


def send_body(raw: bytes) -> dict[str, Any] | None:
    """A `followups` queue message's body, or None when it is not one of ours."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) for k in ("notificationId", "patientId", "due")
    ):
        return None
    return body


def channels_for(fu: Followups, policy: ReminderPolicy, patient: PatientFacts) -> ChannelPlan:
    from shared.notifications.api import plan_channels

    configured = fu.notifier.channels if fu.notifier is not None else frozenset()
    return plan_channels(policy.channels, patient.contacts, configured=configured)
