"""Event Grid triggers, delivered the way Core Tools accepts them for local testing:
`POST /runtime/webhooks/EventGrid?functionName=<name>` (the host's own webhook, outside the route
prefix; no key locally). Behaviour follows the Event Grid extension's request processor
(Microsoft.Azure.WebJobs.Extensions.EventGrid, `HttpRequestProcessor` and
`EventGridExtensionConfigProvider`):

- an unknown `functionName` is 404;
- header `aeg-event-type: SubscriptionValidation` answers the handshake with
  `{"validationResponse": <data.validationCode>}` (Event Grid schema: an array; CloudEvents: the
  object's data) and invokes nothing; an `OPTIONS` request (the CloudEvents abuse-protection
  handshake) answers 200 with `WebHook-Allowed-Origin`;
- `aeg-event-type: Notification` delivers the body, an array of events or one event, in either the
  Event Grid schema or CloudEvents 1.0: the function runs once per event, all at once, each with the
  worker's own conversion (`func.EventGridEvent`, or `func.CloudEvent` for a CloudEvent); 202 when
  every invocation succeeded, 500 if any failed (Event Grid then retries the whole delivery);
- `Unsubscribe` is 202; any other or missing `aeg-event-type` is 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from devhost.discovery import EventGridFunction
from devhost.invocation import Invoker, Stopwatch, log_failure, log_invocation, new_id

logger = logging.getLogger("psc.devhost")

WEBHOOK_PATH = "/runtime/webhooks/eventgrid"
_ALLOWED_ORIGINS = frozenset(
    {
        "eventgrid.azure.net",
        "eventgrid.azure.us",
        "eventgrid.azure.eaglex.ic.gov",
        "eventgrid.azure.microsoft.scloud",
        "eventgrid.azure.cn",
    }
)


def to_event(event: dict[str, Any]) -> Any:
    """What the Python worker hands the function for one event."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata={})


def is_webhook(path: str) -> bool:
    return path.rstrip("/").lower() == WEBHOOK_PATH


class EventGridHost:
    """ASGI app for the host's Event Grid webhook."""

    def __init__(self, functions: Sequence[EventGridFunction], invoker: Invoker) -> None:
        self._functions = {function.target.name: function for function in functions}
        self._invoker = invoker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        name = request.query_params.get("functionName") or ""
        function = self._functions.get(name)
        if function is None:
            logger.info("event grid delivery for an unknown function status=404")
            return Response(f"cannot find function: '{name}'", status_code=404, media_type="text/plain")
        if request.method == "OPTIONS":
            origin = request.headers.get("webhook-request-origin", "")
            allowed = origin if origin in _ALLOWED_ORIGINS else "eventgrid.azure.net"
            return Response(status_code=200, headers={"WebHook-Allowed-Origin": allowed})
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "POST, OPTIONS"})
        kind = (request.headers.get("aeg-event-type") or "").lower()
        if kind not in ("subscriptionvalidation", "notification"):
            return Response(status_code=202 if kind == "unsubscribe" else 400)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return Response("The request content is not JSON.", status_code=400, media_type="text/plain")
        if kind == "subscriptionvalidation":
            return self._handshake(body)
        events = body if isinstance(body, list) else [body]
        if not all(isinstance(event, dict) for event in events):
            return Response("Each event must be a JSON object.", status_code=400, media_type="text/plain")
        results = await asyncio.gather(*(self._invoke(function, event) for event in events))
        return Response(status_code=202 if all(results) else 500)

    @staticmethod
    def _handshake(body: Any) -> Response:
        try:
            if isinstance(body, list):
                code = body[0]["data"]["validationCode"]
            else:
                data = body["data"]
                code = (json.loads(data) if isinstance(data, str) else data)["validationCode"]
        except (KeyError, IndexError, TypeError, ValueError):
            return Response("No validation code in the handshake.", status_code=400, media_type="text/plain")
        return JSONResponse({"validationResponse": code})

    async def _invoke(self, function: EventGridFunction, event: dict[str, Any]) -> bool:
        name = function.target.name
        invocation_id = new_id()
        fields: dict[str, str | int] = {
            "event_id": str(event.get("id", "")),
            "event_type": str(event.get("eventType") or event.get("type") or ""),
        }
        watch = Stopwatch()
        try:
            await self._invoker.call(function.target, to_event(event), invocation_id=invocation_id)
        except Exception as exc:
            log_failure(name, invocation_id, exc)
            log_invocation(
                function=name,
                trigger="eventGrid",
                outcome="failed",
                duration_ms=watch.ms,
                correlation_id=invocation_id,
                failed=True,
                **fields,
            )
            return False
        log_invocation(
            function=name,
            trigger="eventGrid",
            outcome="ok",
            duration_ms=watch.ms,
            correlation_id=invocation_id,
            failed=False,
            **fields,
        )
        return True
