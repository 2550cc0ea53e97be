"""The embedded real-time hub on its own port: started and stopped with the dev host (or alone by
`python -m devhost hub`), in the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from devhost.errors import StartError
from devhost.realtime_hub import MAX_CLIENT_FRAME_BYTES, HubServer
from shared.kernel.realtime import SUBPROTOCOL

if TYPE_CHECKING:
    from shared.config import Settings

logger = logging.getLogger("psc.devhost.realtime")


class _QuietUvicorn(uvicorn.Server):
    """No signal capture: the dev host (or the `hub` command) owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _NoTokensInLogs(logging.Filter):
    """uvicorn logs each WebSocket upgrade with its query string, which holds the access token (at
    INFO, and the request line at DEBUG); and its sans-I/O protocol reports a refused upgrade (an
    HTTP 401 denial response) as "returned without completing handshake", which here is the
    intended answer, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith('%s - "WebSocket %s"') or "without completing handshake" in message:
            return False
        return "access_token=" not in record.getMessage()


def _quiet_uvicorn_logs() -> None:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoTokensInLogs) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_NoTokensInLogs())


class EmbeddedHub:
    """Serve the hub on `bind:port` (0: any free port) until `stop`."""

    def __init__(self, key: str, *, hub: str = "psc", bind: str = "127.0.0.1", port: int = 7072) -> None:
        self.app = HubServer(key)
        self.hub = hub
        self._bind = bind
        self._port = port
        self._server: _QuietUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def endpoint(self) -> str:
        """What the SDK adapter is given: `http://<host>:<port>` (clients get `ws://` from the SDK)."""
        if self.port is None:
            raise RuntimeError("the hub is not running")
        shown = "127.0.0.1" if self._bind in ("0.0.0.0", "::", "") else self._bind  # noqa: S104
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        _quiet_uvicorn_logs()
        family = socket.AF_INET6 if ":" in self._bind else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._bind, self._port))
        except OSError as exc:
            sock.close()
            raise StartError(
                f"the real-time hub could not listen on {self._bind}:{self._port} ({exc.strerror});"
                " choose another with --realtime-port or PSC_REALTIME_PORT"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            ws_max_size=MAX_CLIENT_FRAME_BYTES,
            timeout_graceful_shutdown=2,
        )
        self._server = _QuietUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="devhost:realtime-hub")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise StartError("the real-time hub stopped while starting")
            await asyncio.sleep(0.005)
        logger.info("realtime hub listening on port %d", self.port)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None

    async def __aenter__(self) -> EmbeddedHub:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


async def start_beside_host(
    settings: Settings, *, bind: str, port: int | None
) -> tuple[EmbeddedHub | None, Settings]:
    """With `PSC_REALTIME=embedded`, start the hub (on `port`, else `PSC_REALTIME_PORT`) and return
    the settings the host's runtime uses: the hub's actual port and key (made for this run when
    `PSC_REALTIME_KEY` is blank), so the app's adapter reaches it. Otherwise nothing starts."""
    if settings.realtime != "embedded":
        return None, settings
    key = settings.realtime_key or secrets.token_urlsafe(32)
    chosen = settings.realtime_port if port is None else port
    hub = EmbeddedHub(key, hub=settings.webpubsub_hub, bind=bind, port=chosen)
    await hub.start()
    assert hub.port is not None
    return hub, settings.model_copy(update={"realtime_key": key, "realtime_port": hub.port})


def describe(settings: Settings, hub: EmbeddedHub | None) -> str:
    """The banner line saying where real-time clients connect."""
    if hub is None:
        return f"Real time: Azure Web PubSub {settings.webpubsub_endpoint} (hub {settings.webpubsub_hub})"
    ws = hub.endpoint.replace("http", "ws", 1)
    return (
        f"Real-time hub (Azure Web PubSub protocols, {SUBPROTOCOL}): {ws}/client/hubs/{hub.hub}"
        f" (REST {hub.endpoint}/api/hubs/{hub.hub})"
    )
