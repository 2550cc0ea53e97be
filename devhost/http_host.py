"""HTTP triggers as an ASGI app: the Functions host's routing under the route prefix, requests
built as `func.HttpRequest`, `func.HttpResponse` sent back as it would be from Azure.

Host-level errors are RFC 9457 problems: 404 when no route template matches, 405 (with `Allow`)
when one matches but not for this method, 413 over the host's request size limit, and 500 with a
correlation id (and nothing else) when a function raises or returns something that is not a
response.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from devhost.discovery import HttpFunction
from devhost.invocation import Invoker, Stopwatch, log_failure, log_invocation, new_id

logger = logging.getLogger("psc.devhost")

PROBLEM_JSON = "application/problem+json"
CORRELATION_HEADER = "x-correlation-id"
PROBLEM_TYPE_PREFIX = "urn:psc:problem:"
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")  # as the app's edge accepts one
# The Functions host refuses request bodies larger than 100 MB unless the app setting
# FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (bytes) says otherwise (HttpRequestBodySizeMiddleware sets
# Kestrel's MaxRequestBodySize from it: a declared length over it, or the first byte past it
# while reading, is a 413). We set it to the app's own 256 KiB, so a big body is refused while
# it streams in, not after the host has buffered 100 MB for the function to refuse.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"


def request_body_limit(environ: Mapping[str, str]) -> int:
    """The host's body limit: FUNCTIONS_REQUEST_BODY_SIZE_LIMIT when it is a whole number of
    bytes (the host ignores anything else), else 100 MB."""
    text = (environ.get(BODY_LIMIT_SETTING) or "").strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else MAX_REQUEST_BYTES


# Set by the server for the body it sends; a function's own values would be wrong after conversion.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class RouteMatch:
    """The function chosen for a request, with its route parameters."""

    function: HttpFunction
    route_params: dict[str, str]


@dataclass(frozen=True)
class NoMatch:
    """No function for this request: `allowed` is empty for 404, else the methods for 405."""

    allowed: frozenset[str]


class HttpHost:
    """ASGI app serving HTTP-triggered functions under `/{route_prefix}`."""

    def __init__(
        self,
        functions: Sequence[HttpFunction],
        invoker: Invoker,
        *,
        route_prefix: str = "api",
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self._prefix = route_prefix.strip("/")
        self._invoker = invoker
        self._max_request_bytes = max_request_bytes
        ordered = sorted(enumerate(functions), key=lambda pair: (pair[1].route.precedence, pair[0]))
        self._functions = [function for _, function in ordered]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    def resolve(self, method: str, raw_path: str) -> RouteMatch | NoMatch:
        """Find the function for a method and percent-encoded path (starting with '/')."""
        below = self._below_prefix(raw_path)
        if below is None:
            return NoMatch(frozenset())
        allowed: set[str] = set()
        for function in self._functions:
            params = function.route.match(below)
            if params is None:
                continue
            if function.methods is None or method in function.methods:
                return RouteMatch(function, params)
            allowed |= function.methods
        return NoMatch(frozenset(allowed))

    async def handle(self, request: Request) -> Response:
        method = request.method.upper()
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        found = self.resolve(method, raw_path.decode("latin-1"))
        if isinstance(found, NoMatch):
            if found.allowed:
                logger.info("no function accepts method=%s here status=405", method)
                return _problem(
                    405,
                    f"This path does not accept {method}.",
                    correlation_id=_correlation_id(request),
                    headers={"Allow": ", ".join(sorted(found.allowed))},
                )
            logger.info("no function matches method=%s status=404", method)
            return _problem(404, "No function matches this path.", correlation_id=_correlation_id(request))
        body = await _read_body(request, self._max_request_bytes)
        if body is None:
            return _problem(
                413,
                f"The request body exceeds {self._max_request_bytes} bytes.",
                correlation_id=_correlation_id(request),
            )
        return await self._invoke(found, request, method, body)

    async def _invoke(self, found: RouteMatch, request: Request, method: str, body: bytes) -> Response:
        function = found.function
        name = function.target.name
        inbound_correlation = request.headers.get(CORRELATION_HEADER)
        http_request = func.HttpRequest(
            method,
            str(request.url),
            headers=_joined_headers(request),
            # Azure hands functions one value per query key: the last one.
            params=dict(request.query_params.multi_items()),
            route_params=found.route_params,
            body=body,
        )
        fields: dict[str, str | int] = {"method": method}
        watch = Stopwatch()
        invocation_id = new_id()
        try:
            result = await self._invoker.call(function.target, http_request, invocation_id=invocation_id)
            response = _to_response(result)
        except _BadReturn as exc:
            correlation_id = inbound_correlation or new_id()
            logger.error(
                "function %s returned %s; HTTP functions must return func.HttpResponse or str "
                "(correlation_id=%s)",
                name,
                exc.type_name,
                correlation_id,
            )
            return self._failed(name, watch, correlation_id, fields)
        except Exception as exc:
            correlation_id = inbound_correlation or new_id()
            log_failure(name, correlation_id, exc)
            return self._failed(name, watch, correlation_id, fields)
        correlation_id = inbound_correlation or response.headers.get(CORRELATION_HEADER) or invocation_id
        log_invocation(
            function=name,
            trigger="http",
            outcome=str(response.status_code),
            duration_ms=watch.ms,
            correlation_id=correlation_id,
            failed=response.status_code >= 500,
            status=response.status_code,
            **fields,
        )
        return response

    def _failed(
        self, name: str, watch: Stopwatch, correlation_id: str, fields: dict[str, str | int]
    ) -> Response:
        log_invocation(
            function=name,
            trigger="http",
            outcome="failed",
            duration_ms=watch.ms,
            correlation_id=correlation_id,
            failed=True,
            status=500,
            **fields,
        )
        return _problem(
            500,
            "The function failed. Quote the correlation id when reporting this.",
            correlation_id=correlation_id,
        )

    def _below_prefix(self, raw_path: str) -> str | None:
        path = raw_path
        if self._prefix:
            marker = "/" + self._prefix
            if not path.lower().startswith(marker.lower()):
                return None
            path = path[len(marker) :]
            if path and not path.startswith("/"):
                return None
        path = path.removeprefix("/")
        # ASP.NET routing ignores one trailing slash.
        return path[:-1] if path.endswith("/") else path


class _BadReturn(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__(type(value).__name__)
        self.type_name = type(value).__name__


def _to_response(result: Any) -> Response:
    if isinstance(result, str):
        return Response(result.encode("utf-8"), media_type="text/plain; charset=utf-8")
    if not isinstance(result, func.HttpResponse):
        raise _BadReturn(result)
    response = Response(result.get_body(), status_code=result.status_code)
    headers = [(name, value) for name, value in result.headers.items() if name.lower() not in _HOP_HEADERS]
    if not any(name.lower() == "content-type" for name, _ in headers):
        mimetype = result.mimetype
        content_type = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        headers.append(("content-type", content_type))
    response.raw_headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
    )
    return response


def _joined_headers(request: Request) -> dict[str, str]:
    joined: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        joined.setdefault(name, []).append(value)
    return {name: ", ".join(values) for name, values in joined.items()}


async def _read_body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# The app's own problem types (shared/web/problems.py), so a client sees one error shape whether
# the host or a function refused the request.
_PROBLEMS = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    500: ("internal", "Internal error"),
}


def _correlation_id(request: Request) -> str:
    given = request.headers.get(CORRELATION_HEADER)
    return given if given and _CORRELATION_ID.match(given) else new_id()


def _problem(
    status: int,
    detail: str,
    *,
    correlation_id: str,
    headers: dict[str, str] | None = None,
) -> Response:
    slug, title = _PROBLEMS[status]
    document = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "correlationId": correlation_id,
    }
    return Response(
        json.dumps(document),
        status_code=status,
        headers={**(headers or {}), CORRELATION_HEADER: correlation_id},
        media_type=PROBLEM_JSON,
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
