"""Callback sender port: one signed POST to a bot's callback URL, its outcome classified.

The URL is checked again at every delivery against the policy of the moment (the allow-list may
have shrunk since the escalation), and the connection goes only to addresses the guard accepts
(shared/callbacks/policy.py). Delivery never raises for anything the network or the bot does: the
outcome is a `DeliveryResult` the schedule (shared/callbacks/schedule.py) acts on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from shared.callbacks.policy import CallbackType, DeliveryResult

__all__ = ["CallbackSender", "DeliveryResult"]


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
