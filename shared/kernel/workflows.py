"""Workflow poster port: one POST of a message (an Adaptive Card) to a Teams channel through the
team's Workflows webhook URL (Power Automate's "When a Teams webhook request is received"; Office
365 connectors are retired). The URL is checked again at every post against the policy of the
moment (shared/consults/workflow_url.py) and the connection goes only to addresses the bot-callback
guard accepts. Posting never raises for what the network or Teams does: the outcome is a
`DeliveryResult` (shared/kernel/callbacks.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from shared.kernel.callbacks import DeliveryResult


@runtime_checkable
class WorkflowPoster(Protocol):
    async def post(self, url: str, payload: Mapping[str, Any]) -> DeliveryResult:
        """POST `payload` as JSON to `url` (no redirects, bounded time)."""
        ...

    async def close(self) -> None: ...
