"""The escalations capability's public module: the webhook's bodies and its service."""

from shared.escalations.intake import EscalationIntake, IntakeResult, conversation_id_for
from shared.escalations.model import Escalation, EscalationAnswer, EscalationRequest

__all__ = [
    "Escalation",
    "EscalationAnswer",
    "EscalationIntake",
    "EscalationRequest",
    "IntakeResult",
    "conversation_id_for",
]
