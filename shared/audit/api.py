"""The audit trail's public module."""

from shared.audit.access_log import AccessLog, AccessLogQuery, access_log, copy_trail
from shared.audit.model import NO_PATIENT, Action, AuditRecord
from shared.audit.trail import record_access, record_accesses

__all__ = [
    "NO_PATIENT",
    "AccessLog",
    "AccessLogQuery",
    "Action",
    "AuditRecord",
    "access_log",
    "copy_trail",
    "record_access",
    "record_accesses",
]
