"""The audit trail's public module."""

from shared.audit.trail import NO_PATIENT, Action, record_access

__all__ = ["NO_PATIENT", "Action", "record_access"]
