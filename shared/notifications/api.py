"""The notifications capability's public module (pure code: texts, SMS segments, channel choice,
delivery reports; the channels themselves are the kernel's `Notifier` port)."""

from shared.notifications.channels import ChannelPlan, ContactPoints, plan_channels
from shared.notifications.model import PURPOSE_OF, AppointmentFacts, Channel, RenderedText, TextKind
from shared.notifications.reports import (
    DeliveryReport,
    Ignored,
    InboundSms,
    Report,
    keyword_language,
    parse_report,
)
from shared.notifications.sms import SmsText, SmsTooLong, fit_sms
from shared.notifications.texts import render, template_language

__all__ = [
    "PURPOSE_OF",
    "AppointmentFacts",
    "Channel",
    "ChannelPlan",
    "ContactPoints",
    "DeliveryReport",
    "Ignored",
    "InboundSms",
    "RenderedText",
    "Report",
    "SmsText",
    "SmsTooLong",
    "TextKind",
    "fit_sms",
    "keyword_language",
    "parse_report",
    "plan_channels",
    "render",
    "template_language",
]
