"""The embedded real-time hub: the part of Azure Web PubSub the app uses, served on a port of its
own by the dev host, so the same SDK-based adapter works against it with an access key and one
portal or console works against both. It speaks HTTP, never in-process calls, so function code in
another process (a test's dev host, `func start` beside `python -m devhost hub`) reaches it too.

Clients: `GET /client/hubs/{hub}` (or `/client/?hub={hub}`) upgraded to a WebSocket, the token in
`access_token` or `Authorization: Bearer`. A missing, forged, expired or wrong-audience token is
refused with HTTP 401 on the upgrade; `exp` is checked at connect only (Web PubSub client spec
2.1). With the subprotocol `json.webpubsub.azure.v1` the client gets the `connected` system frame,
group messages as `{"type":"message","from":"group","group","dataType","data"}`, and may send
`joinGroup`/`leaveGroup`/`sendToGroup` only with the role `webpubsub.joinLeaveGroup[.<group>]` /
`webpubsub.sendToGroup[.<group>]`; otherwise the request is refused with the `Forbidden` ack the
service sends when an `ackId` was given (without one it is fire-and-forget, as in Azure), and a
repeated `ackId` is acked `Duplicate`. A frame that is no such request closes the connection (the
service "declines the client"). A client without a subprotocol (a "simple" client) receives a group
message as its bare data, and a frame it sends closes it: no event handler is configured, as in
our Bicep. Other subprotocols are refused (400): the reliable and protobuf ones are not emulated.

REST (the subset the SDK calls for us), each call authenticated by a JWT signed with the key whose
`aud` is the request URL (401 otherwise), each but the health probe with an `api-version`:
`POST /api/hubs/{hub}/groups/{group}/:send` (202; JSON, text or binary body),
`PUT|DELETE /api/hubs/{hub}/users/{user}/groups/{group}` (200 / 204: the user's open
connections join or leave), `HEAD|GET /api/hubs/{hub}/groups/{group}` (200 when it has a
connection, else 404: the SDK's `group_exists`), `HEAD|GET /api/health` (200).

Delivery: every connection has an outbound queue drained by its own task, so a send is answered
once queued (the service, too, accepts before it delivers), a slow client never holds up the
others, and each group's frames keep their order. A connection whose queue overflows is closed.
Hand-written: no library emulates Web PubSub.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from devhost.realtime_auth import TokenRefused, check_rest_token, client_claims
from shared.kernel.realtime import MAX_PAYLOAD_BYTES, SUBPROTOCOL

logger = logging.getLogger("psc.devhost.realtime")

# Web PubSub refuses a client frame over 1 MB; uvicorn closes the connection (1009) above this.
MAX_CLIENT_FRAME_BYTES = 1_048_576
MAX_GROUP_LENGTH = 1024  # the REST API's and the SDK's limit
OUTBOX_FRAMES = 10_000
_HUB = re.compile(r"[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}")
_PREDEFINED = re.compile(r"(json|protobuf)(\.reliable)?\.webpubsub\.azure\.v1")
Frame = str | bytes
# What a connection's writer takes next: a frame, or None to stop after what is queued.
Queued = Frame | None


@dataclass(eq=False)
class Connection:
    id: str
    user_id: str | None
    roles: frozenset[str]
    pubsub: bool
    groups: set[str] = field(default_factory=set)
    outbox: asyncio.Queue[Queued] = field(default_factory=lambda: asyncio.Queue(OUTBOX_FRAMES))
    acked: set[int] = field(default_factory=set)
    overflowed: bool = False

    def may(self, permission: str, group: str) -> bool:
        return f"webpubsub.{permission}" in self.roles or f"webpubsub.{permission}.{group}" in self.roles

    def push(self, frame: Queued) -> None:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True


@dataclass
class Hub:
    groups: dict[str, set[Connection]] = field(default_factory=dict)
    users: dict[str, set[Connection]] = field(default_factory=dict)

    def join(self, connection: Connection, group: str) -> None:
        self.groups.setdefault(group, set()).add(connection)
        connection.groups.add(group)

    def leave(self, connection: Connection, group: str) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.discard(connection)
            if not members:
                del self.groups[group]
        connection.groups.discard(group)

    def publish(self, group: str, message: Message, *, skip: set[str], from_user: str | None = None) -> None:
        members = self.groups.get(group)
        if not members:
            return
        envelope: dict[str, Any] = {"type": "message", "from": "group", "group": group}
        envelope["dataType"] = message.data_type
        if from_user is not None:
            envelope["fromUserId"] = from_user
        # Serialised once per send, not once per connection.
        head = json.dumps(envelope, separators=(",", ":"))[:-1]
        frame = f'{head},"data":{message.data_json}}}'
        for connection in list(members):
            if connection.id not in skip:
                connection.push(frame if connection.pubsub else message.bare)


@dataclass(frozen=True)
class Message:
    """One message to publish: its `dataType`, its data as JSON text (the subprotocol frame's
    `data`), and what a simple client gets (the JSON or text itself, or the binary bytes)."""

    data_type: str
    data_json: str
    bare: Frame

    @classmethod
    def of(cls, data_type: str, data: Any) -> Message:
        """From a client request: JSON data as is, text as a string, binary as base64 text."""
        if data_type == "json":
            text = json.dumps(data)
            return cls("json", text, text)
        if data_type == "binary":
            return cls("binary", json.dumps(data), base64.b64decode(data))
        return cls("text", json.dumps(data), data)


class HubServer:
    """The ASGI application and the hubs' state (one `Hub` per hub name, case-insensitive)."""

    def __init__(self, key: str) -> None:
        self._key = key
        self.hubs: dict[str, Hub] = {}
        self.router = Router(
            routes=[
                WebSocketRoute("/client/hubs/{hub}", self._client),
                WebSocketRoute("/client", self._client),
                WebSocketRoute("/client/", self._client),
                Route("/api/health", self._health, methods=["GET", "HEAD"]),
                Route("/api/hubs/{hub}/groups/{group}/:send", self._send_to_group, methods=["POST"]),
                Route(
                    "/api/hubs/{hub}/users/{user}/groups/{group}", self._user_group, methods=["PUT", "DELETE"]
                ),
                Route("/api/hubs/{hub}/groups/{group}", self._group_exists, methods=["GET", "HEAD"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.router(scope, receive, send)

    def hub(self, name: str) -> Hub:
        return self.hubs.setdefault(name.lower(), Hub())

    # -- clients ---------------------------------------------------------------------------------

    async def _client(self, websocket: WebSocket) -> None:
        hub_name = websocket.path_params.get("hub") or websocket.query_params.get("hub") or ""
        if not _HUB.fullmatch(hub_name):
            await websocket.send_denial_response(Response("Unknown hub.", status_code=404))
            return
        requested = websocket.scope.get("subprotocols") or []
        if SUBPROTOCOL not in requested and any(_PREDEFINED.fullmatch(p) for p in requested):
            await websocket.send_denial_response(
                Response(f"The embedded hub speaks {SUBPROTOCOL} only.", status_code=400)
            )
            return
        token = websocket.query_params.get("access_token")
        if token is None:
            token = _bearer(websocket.headers.get("authorization"))
        audience = (
            f"{websocket.url.scheme.replace('ws', 'http', 1)}://{websocket.url.netloc}/client/hubs/{hub_name}"
        )
        try:
            claims = client_claims(token, self._key, audience)
        except TokenRefused as exc:
            logger.info("realtime connection refused: %s", exc)
            await websocket.send_denial_response(Response("Unauthorized.", status_code=401))
            return
        pubsub = SUBPROTOCOL in requested
        connection = Connection(
            id=secrets.token_urlsafe(16),
            user_id=claims.user_id,
            roles=claims.roles,
            pubsub=pubsub,
        )
        hub = self.hub(hub_name)
        await websocket.accept(subprotocol=SUBPROTOCOL if pubsub else None)
        if connection.user_id is not None:
            hub.users.setdefault(connection.user_id, set()).add(connection)
        for group in claims.groups:
            hub.join(connection, group)
        if pubsub:
            connection.push(
                json.dumps(
                    {
                        "type": "system",
                        "event": "connected",
                        "userId": connection.user_id,
                        "connectionId": connection.id,
                    }
                )
            )
        writer = asyncio.create_task(_drain(websocket, connection), name=f"hub:{connection.id}")
        try:
            declined = await self._read(websocket, connection, hub)
            if declined is not None:
                await _decline(websocket, connection, writer, declined)
        finally:
            for group in list(connection.groups):
                hub.leave(connection, group)
            if connection.user_id is not None:
                own = hub.users.get(connection.user_id, set())
                own.discard(connection)
                if not own:
                    hub.users.pop(connection.user_id, None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _read(self, websocket: WebSocket, connection: Connection, hub: Hub) -> str | None:
        """Handle the client's frames until it leaves (None) or sends one to decline it for."""
        while True:
            try:
                message = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            request = _parse_request(text) if connection.pubsub and text is not None else None
            if request is None:
                return "Invalid message."
            self._handle(connection, hub, request)

    def _handle(self, connection: Connection, hub: Hub, request: dict[str, Any]) -> None:
        kind, group, ack_id = request["type"], request.get("group"), request.get("ackId")
        if kind in ("event", "sequenceAck"):
            return  # no event handler is configured; reliable protocols are not emulated
        assert isinstance(group, str)
        if ack_id is not None and ack_id in connection.acked:
            _ack(connection, ack_id, "Duplicate", f"Message with ackId: {ack_id} has been processed.")
            return
        if kind in ("joinGroup", "leaveGroup"):
            if not connection.may("joinLeaveGroup", group):
                verb = "join" if kind == "joinGroup" else "leave"
                refusal = f"The client does not have permission to {verb} group '{group}'."
                _ack(connection, ack_id, "Forbidden", refusal)
                return
            (hub.join if kind == "joinGroup" else hub.leave)(connection, group)
        else:
            if not connection.may("sendToGroup", group):
                refusal = f"The client does not have permission to send to group '{group}'."
                _ack(connection, ack_id, "Forbidden", refusal)
                return
            message = Message.of(request["dataType"], request["data"])
            skip = {connection.id} if request.get("noEcho") else set()
            hub.publish(group, message, skip=skip, from_user=connection.user_id)
        if ack_id is not None:
            connection.acked.add(ack_id)
        _ack(connection, ack_id, None, None)

    # -- REST ------------------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200)

    def _refused(self, request: Request) -> Response | None:
        if not request.query_params.get("api-version"):
            return _error(400, "BadRequest", "The api-version query parameter is required.")
        host = request.headers.get("host", request.url.netloc)
        url = f"{request.url.scheme}://{host}{_raw_target(request)}"
        try:
            check_rest_token(request.headers.get("authorization"), self._key, url)
        except TokenRefused as exc:
            logger.info("realtime REST call refused: %s", exc)
            return _error(401, "Unauthorized", "The access token is invalid.")
        hub, group = request.path_params.get("hub", ""), request.path_params.get("group")
        if not _HUB.fullmatch(hub):
            return _error(400, "BadRequest", "Invalid hub name.")
        if group is not None and not (1 <= len(group) <= MAX_GROUP_LENGTH and group.strip()):
            return _error(400, "BadRequest", "Invalid group name.")
        return None

    async def _send_to_group(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if "filter" in request.query_params:
            return _error(400, "BadRequest", "The embedded hub does not support filter.")
        body = await request.body()
        if len(body) > MAX_PAYLOAD_BYTES:
            return _error(413, "PayloadTooLarge", "The message is too large.")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "application/json":
            try:
                json.loads(body)
            except ValueError:
                return _error(400, "BadRequest", "The body is not JSON.")
            text = body.decode()
            message = Message("json", text, text)
        elif media == "text/plain":
            message = Message.of("text", body.decode(errors="replace"))
        elif media == "application/octet-stream":
            message = Message("binary", json.dumps(base64.b64encode(body).decode()), body)
        else:
            return _error(415, "UnsupportedMediaType", "Use application/json, text/plain or octet-stream.")
        skip = set(request.query_params.getlist("excluded"))
        hub, group = self.hub(request.path_params["hub"]), request.path_params["group"]
        hub.publish(group, message, skip=skip)
        return Response(status_code=202)

    async def _user_group(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        hub = self.hub(request.path_params["hub"])
        group = request.path_params["group"]
        adding = request.method == "PUT"
        # The user's connections open now; one made later has only its token's groups.
        for connection in list(hub.users.get(request.path_params["user"], ())):
            if adding:
                hub.join(connection, group)
            else:
                hub.leave(connection, group)
        return Response(status_code=200 if adding else 204)

    async def _group_exists(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        found = bool(self.hub(request.path_params["hub"]).groups.get(request.path_params["group"]))
        return Response(status_code=200 if found else 404)


async def _drain(websocket: WebSocket, connection: Connection) -> None:
    try:
        while True:
            if connection.overflowed:
                await websocket.close(code=1013, reason="too many undelivered messages")
                return
            frame = await connection.outbox.get()
            if isinstance(frame, bytes):
                await websocket.send_bytes(frame)
            elif frame is not None:
                await websocket.send_text(frame)
            else:
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the reader sees the disconnect and cleans up


async def _decline(
    websocket: WebSocket, connection: Connection, writer: asyncio.Task[None], reason: str
) -> None:
    if connection.pubsub:
        connection.push(json.dumps({"type": "system", "event": "disconnected", "message": reason}))
    connection.push(None)  # the writer stops after what is queued, the disconnected frame last
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(writer), timeout=5)
    with contextlib.suppress(Exception):
        await websocket.close(code=1008, reason=reason)


def _ack(connection: Connection, ack_id: int | None, error: str | None, message: str | None) -> None:
    if ack_id is None:
        return
    frame: dict[str, Any] = {"type": "ack", "ackId": ack_id, "success": error is None}
    if error is not None:
        frame["error"] = {"name": error, "message": message}
    connection.push(json.dumps(frame))


def _parse_request(text: str) -> dict[str, Any] | None:
    """The request if it is one the subprotocol defines, else None."""
    try:
        request = json.loads(text)
    except ValueError:
        return None
    if not isinstance(request, dict) or not isinstance(request.get("type"), str):
        return None
    ack_id = request.get("ackId")
    if ack_id is not None and (isinstance(ack_id, bool) or not isinstance(ack_id, int) or ack_id < 0):
        return None
    kind = request["type"]
    if kind in ("event", "sequenceAck"):
        return request
    if kind not in ("joinGroup", "leaveGroup", "sendToGroup"):
        return None
    group = request.get("group")
    if not isinstance(group, str) or not 1 <= len(group) <= MAX_GROUP_LENGTH or not group.strip():
        return None
    if kind == "sendToGroup":
        data_type = request.setdefault("dataType", "json")
        if "data" not in request or data_type not in ("json", "text", "binary"):
            return None
        if data_type != "json" and not isinstance(request["data"], str):
            return None
        if data_type == "binary":
            try:
                base64.b64decode(request["data"], validate=True)
            except ValueError:
                return None
    return request


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _raw_target(request: Request) -> str:
    """The path and query exactly as sent (percent-escapes kept), which the SDK signed as `aud`."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)
