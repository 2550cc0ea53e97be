"""PHI-safe logging and correlation ids.

The rule is "log ids, never content". Code logs constant messages with ids in `extra`; this module
enforces the rule for everything that reaches a log, including third-party libraries, by
rewriting every record as it is created (a log-record factory, so no handler can see it first):

* known PHI values of the current request (names, e-mails, phones, dates of birth, notes the
  service layer handles) are registered with `mark_phi(...)` and replaced wherever they appear;
* anything shaped like an e-mail address, a phone number or a calendar date is masked;
* `extra` fields other than the allow-listed id-like ones are dropped, and string arguments that
  look like free text (spaces, or longer than an id) are masked.

Regexes alone cannot recognise a name; the request-scoped value list is what catches those.
"""

from __future__ import annotations

import contextlib
import logging
import re
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

REDACTED = "[redacted]"

ALLOWED_EXTRA = frozenset(
    {
        "correlation_id",
        "function",
        "trigger",
        "outcome",
        "status",
        "duration_ms",
        "patient_id",
        "conversation_id",
        "appointment_id",
        "agent_id",
        "queue",
        "message_id",
        "sequence_number",
        "delivery_count",
        "error_type",
        "action",
        "resource",
        "actor",
        "container",
        "count",
        "method",
        "past_due",
        "reason",
    }
)

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Not an IPv4 address (the dev host logs its URL).
_PHONE = re.compile(r"(?<![\w.-])(?!\d{1,3}(?:\.\d{1,3}){3}(?![\d]))\+?\d[\d ().-]{6,}\d(?![\w-])")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|(?<![\d.])\d{1,2}[/.]\d{1,2}[/.]\d{2,4}(?![\d.])")
_ID_LIKE = re.compile(r"^[A-Za-z0-9_.:/@-]{1,80}$")

# Standard LogRecord attributes: everything else on a record came from `extra`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

_phi_values: ContextVar[tuple[str, ...]] = ContextVar("psc_phi_values", default=())
correlation_id_var: ContextVar[str | None] = ContextVar("psc_correlation_id", default=None)


def mark_phi(*values: object) -> None:
    """Register values of the current request that must never appear in a log line."""
    fresh = [str(v) for v in _flatten(values) if v is not None and len(str(v)) >= 2]
    if fresh:
        _phi_values.set(_phi_values.get() + tuple(fresh))


def _flatten(values: Iterable[object]) -> Iterable[object]:
    for value in values:
        if isinstance(value, dict):
            yield from _flatten(value.values())
        elif isinstance(value, list | tuple | set):
            yield from _flatten(value)
        else:
            yield value


def scrub(text: str) -> str:
    # Longest first so a full name is replaced before a part of it.
    for value in sorted(_phi_values.get(), key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    text = _EMAIL.sub(REDACTED, text)
    text = _DATE.sub(REDACTED, text)
    return _PHONE.sub(REDACTED, text)


def _safe_arg(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    text = str(value)
    if not _ID_LIKE.match(text):
        return REDACTED
    return scrub(text)


def sanitize_record(record: logging.LogRecord) -> logging.LogRecord:
    if record.args:
        if isinstance(record.args, dict):
            record.args = {k: _safe_arg(v) for k, v in record.args.items()}
        else:
            record.args = tuple(_safe_arg(a) for a in record.args)
    if isinstance(record.msg, str):
        record.msg = scrub(record.msg)
    else:
        record.msg = scrub(str(record.msg))
    for key in list(vars(record)):
        if key not in _RECORD_FIELDS and key not in ALLOWED_EXTRA:
            delattr(record, key)
        elif key in ALLOWED_EXTRA:
            value = getattr(record, key)
            if isinstance(value, str):
                setattr(record, key, _safe_arg(value))
    if record.exc_info and record.exc_info[0] is not None:
        # Exception messages can echo input values (validation errors do): keep the type and the
        # frames, drop the message.
        exc_type, _exc, tb = record.exc_info
        frames = "".join(traceback.format_tb(tb)) if tb else ""
        record.exc_text = f"Traceback (most recent call last):\n{frames}{exc_type.__qualname__}: {REDACTED}"
        record.exc_info = None
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    cid = correlation_id_var.get()
    if cid and not hasattr(record, "correlation_id"):
        record.correlation_id = cid
    return record


_installed = False


class PhiFilter(logging.Filter):
    """Handler filter: `extra` fields are set after the record factory runs, so handlers that
    ship records (console, OpenTelemetry) carry this filter as well."""

    def filter(self, record: logging.LogRecord) -> bool:
        sanitize_record(record)
        return True


PHI_FILTER = PhiFilter()


def install_logging(level: int = logging.INFO) -> None:
    """Install the PHI guard for the whole process (idempotent). Called when the runtime is built
    and by the dev host, never at import time."""
    global _installed
    for handler in logging.getLogger().handlers:
        if PHI_FILTER not in handler.filters:
            handler.addFilter(PHI_FILTER)
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return sanitize_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    # SDK HTTP logging prints URLs and headers, which can hold patient ids and tokens.
    for noisy in ("azure", "uamqp", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("psc").setLevel(level)
    _installed = True


@contextlib.contextmanager
def request_scope(correlation_id: str) -> Iterator[None]:
    """One invocation: its correlation id, and a fresh list of PHI values to keep out of logs."""
    cid_token = correlation_id_var.set(correlation_id)
    phi_token = _phi_values.set(())
    try:
        yield
    finally:
        _phi_values.reset(phi_token)
        correlation_id_var.reset(cid_token)


def new_correlation_id() -> str:
    return uuid.uuid4().hex
