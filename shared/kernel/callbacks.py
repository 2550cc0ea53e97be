"""Callback sender port: one signed POST to a bot's callback URL, its outcome classified.

The URL is checked again at every delivery against the policy of the moment (the allow-list may
have shrunk since the escalation), and the connection goes only to addresses the guard accepts
(shared/callbacks/policy.py). Delivery never raises for anything the network or the bot does: the
outcome is a `DeliveryResult` the schedule (shared/callbacks/schedule.py) acts on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from pydantic import BaseModel, ConfigDict

CallbackType = Literal[
    "queue.position", "agent.joined", "message", "conversation.transferred", "conversation.closed"
]
CALLBACK_TYPES: tuple[str, ...] = get_args(CallbackType)

DeliveryReason = Literal[
    "delivered",
    # retried with backoff
    "server-error",
    "rate-limited",
    "request-timeout",
    "timeout",
    "connect-error",
    "dns-error",
    "tls-error",
    "protocol-error",
    # dead-lettered at once
    "redirect",
    "client-error",
    "url-refused",
    "address-refused",
    # the endpoint is gone (410): this conversation's callbacks stop
    "gone",
]
RETRYABLE: frozenset[str] = frozenset(
    {
        "server-error",
        "rate-limited",
        "request-timeout",
        "timeout",
        "connect-error",
        "dns-error",
        "tls-error",
        "protocol-error",
    }
)


class DeliveryResult(BaseModel):
    """What one delivery attempt came to. `retry_after` (seconds) only when the answer asked for
    it (429, 503); `status` only when an HTTP answer arrived."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    reason: DeliveryReason
    status: int | None = None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.reason in RETRYABLE

    @property
    def gone(self) -> bool:
        return self.reason == "gone"

    @classmethod
    def failed(cls, reason: DeliveryReason) -> DeliveryResult:
        return cls(ok=False, reason=reason)


@runtime_checkable
class CallbackSender(Protocol):
    async def deliver(
        self,
        url: str,
        event_type: CallbackType,
        data: Mapping[str, Any],
        *,
        message_id: str,
        timestamp: datetime,
    ) -> DeliveryResult:
        """POST `{"type", "timestamp", "data"}` to `url`, signed with Standard Webhooks:
        `webhook-id` = `message_id` (the same on every retry), `webhook-timestamp` = the time of
        this attempt, `timestamp` in the body = when the event happened. ValueError only for a
        call that could never be right (unknown type, data without the conversation ids)."""
        ...

    async def close(self) -> None: ...
