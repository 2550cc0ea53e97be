"""A recording stand-in for Azure Communication Services' SMS and Email send APIs, on loopback.

The real SDKs talk to it (`ACS__endpoint=http://127.0.0.1:<port>`, authenticated with HMAC-SHA256
over the published stand-in key `shared.adapters.acs_notify.ACS_STANDIN_KEY`), so tests see what
reaches the wire, repeatability fields and headers included, and crash tests can kill a worker
around a send and count what the "provider" accepted. It implements, as ACS documents them:

* `POST /sms?api-version=2021-03-07`: one result per recipient in a 202 (a failure does not fail
  the request); each recipient's `repeatabilityRequestId` + `repeatabilityFirstSent` make a repeat
  inside the 5-minute window answer the first result without sending again, a first-sent time
  outside it a per-recipient 412, the same id with another message a 400;
* `POST /emails:send?api-version=...`: 202 `{"id", "status": "Running"}` with `Operation-Location`;
  `Operation-Id` names the operation; the `Repeatability-Request-Id`/`-First-Sent` headers as in
  "Repeatable requests" (a repeat answers the first status code, outside the window 412, a
  mismatching body 400); a repeated `Operation-Id` after the window returns the operation it names
  without sending again (the Azure REST guidelines' rule for client-chosen operation ids; assumed,
  not checked against the service);
* `GET /emails/operations/{id}`: the operation's status, or 404.

Refused as ACS refuses them: a missing or wrong HMAC signature (401), an `x-ms-date` more than 15
minutes off, a body whose hash is not `x-ms-content-sha256`, an SMS recipient that is not E.164
(per recipient, 400), numbers and addresses listed in `failures` (per recipient, with that status).

    python -m devhost.acs_standin [--port 7072]   # prints the endpoint; GET /_standin/sent lists sends
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.adapters.acs_notify import ACS_STANDIN_KEY
from shared.kernel.clock import Clock, SystemClock

WINDOW = timedelta(minutes=5)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Sent:
    """A message the stand-in accepted and would have delivered (repeats are not counted)."""

    channel: str
    to: str
    text: str
    provider_id: str
    tag: str | None = None
    subject: str | None = None
    html: str | None = None


@dataclass
class AcsStandIn:
    """`clock` judges repeatability windows (tests share theirs); request dates are checked
    against the real time, as the SDKs stamp them with it. `failures`: recipient -> (status,
    message) to answer per recipient instead of sending."""

    clock: Clock = field(default_factory=SystemClock)
    key: str = ACS_STANDIN_KEY
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    _sms: dict[str, tuple[datetime, str, dict[str, Any]]] = field(default_factory=dict)
    _email_repeats: dict[str, tuple[datetime, str, int, dict[str, Any]]] = field(default_factory=dict)
    _operations: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/sms", self._send_sms, methods=["POST"]),
                Route("/emails:send", self._send_email, methods=["POST"]),
                Route("/emails/operations/{operation_id}", self._operation, methods=["GET"]),
                Route("/_standin/sent", self._list_sent, methods=["GET"]),
            ]
        )

    # --- the two send APIs -------------------------------------------------------------------

    async def _send_sms(self, request: Request) -> Response:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        recipients = body.get("smsRecipients") if isinstance(body, dict) else None
        if not isinstance(recipients, list) or not recipients or not isinstance(body.get("message"), str):
            return _error(400, "BadRequest", "from, smsRecipients and message are required")
        options = body.get("smsSendOptions") or {}
        items = [self._sms_item(body, recipient, options) for recipient in recipients]
        return JSONResponse({"value": items}, status_code=202)

    def _sms_item(
        self, body: dict[str, Any], recipient: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        to = str(recipient.get("to", ""))
        request_id = recipient.get("repeatabilityRequestId")
        first_sent = recipient.get("repeatabilityFirstSent")
        fingerprint = json.dumps([to, body.get("from"), body.get("message")])
        if not _E164.match(to):
            return _item(to, 400, None, "Invalid To phone number format.", None)
        if request_id is not None:
            sent_at = _http_date(first_sent)
            if sent_at is None:
                return _item(to, 400, None, "Invalid repeatability headers.", "rejected")
            if abs(self.clock.now() - sent_at) > WINDOW:
                return _item(to, 412, None, "Repeatability first sent is not within the window.", "rejected")
            seen = self._sms.get(request_id)
            if seen is not None and abs(self.clock.now() - seen[0]) <= WINDOW:
                if seen[1] != fingerprint:
                    return _item(to, 400, None, "Repeated request does not match.", "rejected")
                return {**seen[2], "repeatabilityResult": "accepted"}
        if to in self.failures:
            status, message = self.failures[to]
            return _item(to, status, None, message, "accepted")
        message_id = f"Outgoing_{datetime.now(UTC):%Y%m%d%H%M%S}{uuid.uuid4()}"
        item = _item(to, 202, message_id, None, "accepted")
        if request_id is not None:
            self._sms[request_id] = (self.clock.now(), fingerprint, item)
        self.sent.append(Sent("sms", to, body["message"], message_id, tag=options.get("tag")))
        return item

    async def _send_email(self, request: Request) -> Response:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        problem = _email_problem(body)
        if problem:
            return _error(400, "BadRequest", problem)
        operation_id = request.headers.get("operation-id") or str(uuid.uuid4())
        request_id = request.headers.get("repeatability-request-id")
        fingerprint = json.dumps(body, sort_keys=True)
        if request_id is not None:
            sent_at = _http_date(request.headers.get("repeatability-first-sent"))
            if sent_at is None:
                return _error(400, "BadRequest", "Invalid repeatability headers.")
            if abs(self.clock.now() - sent_at) > WINDOW:
                return _error(412, "PreconditionFailed", "Repeatability first sent is not within 5 minutes.")
            seen = self._email_repeats.get(request_id)
            if seen is not None and abs(self.clock.now() - seen[0]) <= WINDOW:
                if seen[1] != fingerprint:
                    return _error(400, "BadRequest", "Repeated request does not match the first.")
                return JSONResponse(
                    seen[3], status_code=seen[2], headers=self._operation_headers(request, seen[3]["id"])
                )
        if operation_id in self._operations:
            answer = {"id": operation_id, "status": "Running"}
            return JSONResponse(
                answer, status_code=202, headers=self._operation_headers(request, operation_id)
            )
        to = [r for r in body["recipients"]["to"]]
        for recipient in to:
            if recipient["address"] in self.failures:
                status, message = self.failures[recipient["address"]]
                return _error(status, "InvalidRecipient", message)
        self._operations[operation_id] = "Succeeded"
        content = body["content"]
        for recipient in to:
            self.sent.append(
                Sent(
                    "email",
                    recipient["address"],
                    content.get("plainText", ""),
                    operation_id,
                    subject=content.get("subject"),
                    html=content.get("html"),
                )
            )
        answer = {"id": operation_id, "status": "Running"}
        if request_id is not None:
            self._email_repeats[request_id] = (self.clock.now(), fingerprint, 202, answer)
        return JSONResponse(answer, status_code=202, headers=self._operation_headers(request, operation_id))

    async def _operation(self, request: Request) -> Response:
        _, refused = await self._admit(request)
        if refused is not None:
            return refused
        operation_id = request.path_params["operation_id"]
        status = self._operations.get(operation_id)
        if status is None:
            return _error(404, "NotFound", "No such operation.")
        return JSONResponse({"id": operation_id, "status": status})

    async def _list_sent(self, request: Request) -> Response:
        return JSONResponse([vars(s) for s in self.sent])

    def _operation_headers(self, request: Request, operation_id: str) -> dict[str, str]:
        base = str(request.base_url).rstrip("/")
        version = request.query_params.get("api-version", "")
        return {
            "Operation-Location": f"{base}/emails/operations/{operation_id}?api-version={version}",
            "Retry-After": "5",
        }

    # --- authentication, as the SDKs' HMAC policy signs ---------------------------------------

    async def _admit(self, request: Request) -> tuple[Any, Response | None]:
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        body: Any = json.loads(raw) if raw else None
        self.requests.append(Recorded(request.method, request.url.path, request.url.query, headers, body))
        if "api-version" not in request.query_params:
            return body, _error(400, "MissingApiVersionParameter", "api-version is required")
        stamp = _http_date(headers.get("x-ms-date"))
        if stamp is None or abs(datetime.now(UTC) - stamp) > timedelta(minutes=15):
            return body, _error(401, "Unauthorized", "x-ms-date is missing or too far from now")
        digest = base64.b64encode(hashlib.sha256(raw).digest()).decode()
        if headers.get("x-ms-content-sha256") != digest:
            return body, _error(401, "Unauthorized", "content hash mismatch")
        path = unquote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        signed = f"{request.method}\n{path}\n{headers['x-ms-date']};{headers.get('host', '')};{digest}"
        expected = base64.b64encode(
            hmac.new(base64.b64decode(self.key), signed.encode(), hashlib.sha256).digest()
        ).decode()
        authorization = headers.get("authorization", "")
        if not hmac.compare_digest(
            authorization,
            f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={expected}",
        ):
            return body, _error(401, "Unauthorized", "signature mismatch")
        return body, None

    # --- running it ------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """Serve on a free loopback port in a thread; yields the endpoint."""
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the ACS stand-in did not start")
            threading.Event().wait(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


def _item(
    to: str, status: int, message_id: str | None, error: str | None, repeatability: str | None
) -> dict[str, Any]:
    item: dict[str, Any] = {"to": to, "httpStatusCode": status, "successful": 200 <= status < 300}
    if message_id:
        item["messageId"] = message_id
    if error:
        item["errorMessage"] = error
    if repeatability:
        item["repeatabilityResult"] = repeatability
    return item


def _email_problem(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("senderAddress"), str):
        return "senderAddress is required"
    to = (body.get("recipients") or {}).get("to")
    if (
        not isinstance(to, list)
        or not to
        or not all(isinstance(r, dict) and "@" in str(r.get("address", "")) for r in to)
    ):
        return "recipients.to needs at least one address"
    content = body.get("content")
    if (
        not isinstance(content, dict)
        or not content.get("subject")
        or not (content.get("plainText") or content.get("html"))
    ):
        return "content needs a subject and plainText or html"
    return None


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _http_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.acs_standin", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=7072)
    args = parser.parse_args(argv)
    import uvicorn

    standin = AcsStandIn()
    print(f"ACS stand-in on http://127.0.0.1:{args.port}  (set ACS__endpoint to it and PSC_NOTIFY=acs)")
    asyncio.run(uvicorn.Server(uvicorn.Config(standin.app, host="127.0.0.1", port=args.port)).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
