"""Messages between functions: JSON bodies, deterministic ids, and the correlation id carried from
the HTTP request that caused them to the queue handler that processes them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.kernel.messages import OutgoingMessage
from shared.kernel.observability import correlation_id_var, new_correlation_id, request_scope

if TYPE_CHECKING:
    import azure.functions as func


def json_message(
    body: dict[str, Any],
    *,
    message_id: str,
    subject: str,
    session_id: str | None = None,
    **properties: str | int | float | bool,
) -> OutgoingMessage:
    """`message_id` must be derived from what the message means (e.g. `appointment-booked:<id>`)
    so Service Bus duplicate detection drops a retried send. The current correlation id (set by the
    HTTP edge or by `handling`) travels as the message's correlation id."""
    return OutgoingMessage(
        body=json.dumps(body, separators=(",", ":")).encode(),
        message_id=message_id,
        subject=subject,
        application_properties=dict(properties),
        session_id=session_id,
        correlation_id=correlation_id_var.get(),
    )


@contextlib.contextmanager
def handling(message: func.ServiceBusMessage) -> Iterator[str]:
    """Scope of one queue invocation: logs and further messages carry the message's correlation
    id (or, for a message sent without one, its message id)."""
    correlation_id = message.correlation_id or message.message_id or new_correlation_id()
    with request_scope(correlation_id):
        yield correlation_id
