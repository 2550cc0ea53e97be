"""The audit trail's public module."""

from shared.audit.model import NO_PATIENT, Action, AuditRecord
from shared.audit.trail import record_access, record_accesses

__all__ = ["NO_PATIENT", "Action", "AuditRecord", "record_access", "record_accesses"]
