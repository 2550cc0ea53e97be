"""The words of notifications: purposes, kinds of text, channels, link names and the facts a text
is filled with. Ids and times only; the texts themselves (PHI) never leave the channel that sends
them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from shared.kernel.notify import Purpose

# Which text: the confirmations are of a booking, a move or a cancellation; stop/start/help answer
# an inbound SMS keyword.
TextKind = Literal["reminder", "booked", "rescheduled", "cancelled", "survey", "stop", "start", "help"]
# Where a text goes: the two ACS channels and the patient portal's inbox.
Channel = Literal["sms", "email", "portal"]
# Links a text may carry (minted by the caller; a text uses them as given).
LinkName = Literal["confirm", "cancel", "reschedule", "survey"]

TEXT_KINDS: tuple[TextKind, ...] = get_args(TextKind)
CHANNELS: tuple[Channel, ...] = get_args(Channel)
LINK_NAMES: tuple[LinkName, ...] = get_args(LinkName)

PURPOSE_OF: dict[TextKind, Purpose | None] = {
    "reminder": "reminder",
    "booked": "confirmation",
    "rescheduled": "confirmation",
    "cancelled": "confirmation",
    "survey": "survey",
    "stop": None,
    "start": None,
    "help": None,
}
# The links each kind of text carries, in every language (a test holds the templates to it, so a
# translation can never drop one). An SMS reminder carries the two one-tap answers only: three
# links of a realistic length (40-60 characters each) leave no room for the appointment itself in
# 160 septets; e-mail and the portal also offer another time. A confirmation of a booking or a
# move carries what a reminder offers but confirm (the patient just acted): cancel, and in e-mail
# and the portal another time; an SMS confirmation carries cancel only, for the same room. A
# cancellation's confirmation carries none: there is nothing left to act on (booking again is the
# portal's ordinary booking, behind sign-in).
LINKS_OF: dict[TextKind, tuple[LinkName, ...]] = {
    "reminder": ("confirm", "cancel", "reschedule"),
    "booked": ("cancel", "reschedule"),
    "rescheduled": ("cancel", "reschedule"),
    "cancelled": (),
    "survey": ("survey",),
    "stop": (),
    "start": (),
    "help": (),
}
SMS_LINKS_OF: dict[TextKind, tuple[LinkName, ...]] = {
    **LINKS_OF,
    "reminder": ("confirm", "cancel"),
    "booked": ("cancel",),
    "rescheduled": ("cancel",),
}


def links_of(kind: TextKind, channel: Channel) -> tuple[LinkName, ...]:
    """The links a text of `kind` carries on `channel`."""
    return SMS_LINKS_OF[kind] if channel == "sms" else LINKS_OF[kind]


# Keyword replies go back by SMS only.
SMS_ONLY: frozenset[TextKind] = frozenset({"stop", "start", "help"})


@dataclass(frozen=True)
class AppointmentFacts:
    """What an appointment text says: who, and when on the clinic's (the provider's) wall clock.
    `patient_zone`: the patient's IANA zone; when the appointment's local time there differs from
    the clinic's, the text names the clinic's zone (None: always name it)."""

    provider_name: str
    start: datetime
    provider_zone: str
    patient_zone: str | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be an aware datetime")


@dataclass(frozen=True)
class RenderedText:
    """A text ready for one channel. `links` are those it carries (name -> URL, unchanged);
    `encoding` and `units` describe an SMS (one segment, always)."""

    kind: TextKind
    channel: Channel
    language: str
    text: str
    subject: str | None = None
    html: str | None = None
    links: dict[str, str] | None = None
    encoding: str | None = None
    units: int | None = None
    shortened: bool = False
    transliterated: bool = False
