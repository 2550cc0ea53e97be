"""The platform's CORS, as the Functions host applies it on Flex Consumption.

The host builds one ASP.NET Core policy from the site's `cors.allowedOrigins` (any header, any
method, credentials only with `supportCredentials`, which we never set) and runs ASP.NET Core's
CorsMiddleware in front of every function (azure-functions-host `CorsOptionsSetup`,
`JobHostCorsMiddleware`; aspnetcore `CorsMiddleware`, `CorsService`). This copies what a browser
can observe of it:

- no `Origin` header: not a CORS request, nothing added;
- a preflight (`OPTIONS` with `Access-Control-Request-Method`) never reaches the function: 204,
  with the allow headers only when the origin is allowed (a refused origin gets a bare 204);
- any other request reaches the function; an allowed origin gets `Access-Control-Allow-Origin`;
- `*` alone allows every origin and answers `*`; `Vary: Origin` only when more than one origin
  is listed; no `Access-Control-Max-Age` and no exposed headers (the host configures neither).

Hand-written because starlette's CORSMiddleware differs where a client can tell: it answers a
refused preflight 400 and adds a max-age.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ANY_ORIGIN = "*"


class PlatformCors:
    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = tuple(origins)  # lower-cased by shared.config.parse_origins
        self._any = self.origins == (ANY_ORIGIN,)
        self._vary = not self._any and len(self.origins) > 1

    def allows(self, origin: str) -> bool:
        return bool(origin) and (self._any or origin in self.origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if "origin" not in headers:
            await self.app(scope, receive, send)
            return
        origin = ",".join(headers["origin"])
        allowed = self.allows(origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(headers, origin if allowed else None, send)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"access-control-allow-origin"
                ]
                message = {**message, "headers": kept + self._allow(origin)}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, headers: dict[str, list[str]], origin: str | None, send: Send) -> None:
        out: list[tuple[bytes, bytes]] = []
        if origin is not None:
            out = self._allow(origin)
            asked = headers.get("access-control-request-headers", [])
            requested = [h.strip() for value in asked for h in value.split(",") if h.strip()]
            if requested:
                out.append((b"access-control-allow-headers", ",".join(requested).encode("latin-1")))
            method = ",".join(headers["access-control-request-method"])
            out.append((b"access-control-allow-methods", method.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})

    def _allow(self, origin: str) -> list[tuple[bytes, bytes]]:
        allow = [(b"access-control-allow-origin", (ANY_ORIGIN if self._any else origin).encode("latin-1"))]
        if self._vary:
            allow.append((b"vary", b"Origin"))
        return allow


def _headers(scope: Scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return found
