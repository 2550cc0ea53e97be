"""Which channel a notification goes to, and the one channel it falls back to.

The policy's `channels` are the allowed channels in fallback order. The patient's
`preferredChannel` goes first when the policy allows it and it is usable; then the policy's order.
SMS needs `consent.sms` and a phone number, e-mail `consent.email` and an address, and both need a
sender configured for the deployment; the portal inbox needs nothing but the policy (a signed-in
patient reads it). A channel that is not usable is skipped with the reason, never silently.

A failed send (an ACS per-recipient failure, or a non-delivery report) falls back once: to the
candidate after the first. A failure of that fallback ends the notification.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shared.notifications.model import CHANNELS, Channel

SkipReason = Literal["no-consent", "no-address", "not-configured"]


@dataclass(frozen=True)
class ContactPoints:
    """What channel choice reads from a patient record (`patients` documents, PatientProfile)."""

    preferred: Channel = "portal"
    consent_sms: bool = False
    consent_email: bool = False
    phone: str | None = None
    email: str | None = None

    @classmethod
    def of(cls, patient: Mapping[str, Any]) -> ContactPoints:
        """From a stored patient document; missing or malformed fields count as absent."""
        stored = patient.get("consent")
        consent: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        preferred = patient.get("preferredChannel")
        return cls(
            preferred=preferred if preferred in CHANNELS else "portal",
            consent_sms=consent.get("sms") is True,
            consent_email=consent.get("email") is True,
            phone=_text(patient.get("phone")),
            email=_text(patient.get("email")),
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Candidate:
    channel: Channel
    to: str | None  # phone (E.164) or e-mail address; None for the portal inbox

    def __repr__(self) -> str:  # never the address: reprs end up in logs and assertion messages
        return f"Candidate({self.channel!r})"


@dataclass(frozen=True)
class Skipped:
    channel: Channel
    reason: SkipReason


@dataclass(frozen=True)
class ChannelPlan:
    candidates: tuple[Candidate, ...]
    skipped: tuple[Skipped, ...]

    @property
    def first(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def fallback_after(self, failed: Channel) -> Candidate | None:
        """The one fallback: the second candidate when the first failed; after the fallback itself
        failed (or for a channel that was never first), nothing."""
        if len(self.candidates) < 2 or self.candidates[0].channel != failed:
            return None
        return self.candidates[1]


def plan_channels(
    allowed: Iterable[Channel],
    patient: ContactPoints,
    *,
    configured: Iterable[Channel] = CHANNELS,
) -> ChannelPlan:
    """The ordered candidates for one notification. `allowed`: the policy's channels in fallback
    order (duplicates and unknown names ignored); `configured`: the channels the deployment can send
    on (the notifier's `channels`, plus the portal)."""
    order: list[Channel] = []
    for channel in allowed:
        if channel in CHANNELS and channel not in order:
            order.append(channel)
    if patient.preferred in order:
        order.remove(patient.preferred)
        order.insert(0, patient.preferred)
    usable = set(configured) | {"portal"}
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    for channel in order:
        reason, to = _usable(channel, patient, usable)
        if reason is None:
            candidates.append(Candidate(channel, to))
        else:
            skipped.append(Skipped(channel, reason))
    return ChannelPlan(tuple(candidates), tuple(skipped))


def _usable(
    channel: Channel, patient: ContactPoints, usable: set[str]
) -> tuple[SkipReason | None, str | None]:
    if channel == "portal":
        return None, None
    if channel == "sms":
        consent, address = patient.consent_sms, patient.phone
    else:
        consent, address = patient.consent_email, patient.email
    if not consent:
        return "no-consent", None
    if not address:
        return "no-address", None
    if channel not in usable:
        return "not-configured", None
    return None, address
