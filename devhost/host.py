"""One function app served the way `func start` serves it: HTTP under the route prefix, timers on
their schedules, queue triggers from the embedded bus; plus the uvicorn server around it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from devhost.config_files import HostConfig
from devhost.cors import PlatformCors
from devhost.discovery import DiscoveredApp, QueueFunction
from devhost.errors import StartError
from devhost.http_host import MAX_REQUEST_BYTES, HttpHost
from devhost.invocation import Invoker
from devhost.pacing import finish_or_cancel
from devhost.queues import QueueRunner
from devhost.timers import TimerScheduler
from shared.ports.clock import Clock
from shared.ports.messages import DeadLetterAdmin, QueueReceiver

logger = logging.getLogger("psc.devhost")


class DevHost:
    """Everything that runs for one function app; `start`/`stop` drive the background loops."""

    def __init__(
        self,
        app: DiscoveredApp,
        *,
        clock: Clock,
        invoker: Invoker,
        receiver: QueueReceiver | None,
        host_config: HostConfig | None = None,
        cors_origins: tuple[str, ...] = (),
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        config = host_config or HostConfig()
        self.app = app
        self.route_prefix = config.route_prefix
        self.http = HttpHost(
            app.http, invoker, route_prefix=config.route_prefix, max_request_bytes=max_request_bytes
        )
        # Always in front, as on Flex Consumption: with no origin listed a preflight still gets 204.
        self.asgi_app: ASGIApp = PlatformCors(self.http, cors_origins)
        self.timers = TimerScheduler(app.timers, clock, invoker)
        self._receiver = receiver
        self.queue_runners: list[QueueRunner] = []
        self.unserved_queues: list[QueueFunction] = []
        for function in app.queues:
            if receiver is None:
                self.unserved_queues.append(function)
                continue
            self.queue_runners.append(
                QueueRunner(
                    function,
                    receiver,
                    clock,
                    invoker,
                    max_concurrent_calls=config.max_concurrent_calls,
                    max_auto_lock_renewal=config.max_auto_lock_renewal,
                )
            )
        self._queue_depths: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def check_queues(self) -> None:
        """Fail now, naming the queue, if a trigger's queue is not one the bus knows."""
        if not isinstance(self._receiver, DeadLetterAdmin):
            return
        unknown = []
        for runner in self.queue_runners:
            try:
                depths = await self._receiver.depths([runner.queue])
            except KeyError:
                unknown.append(f"function {runner.function.target.name}: queue {runner.queue!r}")
                continue
            self._queue_depths[runner.queue] = sum(d.active for d in depths)
        if unknown:
            raise StartError(
                "these queues are not in the bus catalogue (shared/catalog.py QUEUES):\n  "
                + "\n  ".join(unknown)
            )

    async def start(self) -> None:
        """Start the timer loop and one loop per queue trigger (in the caller's context)."""
        self._stop.clear()
        if self.app.timers:
            self._loops.append(
                asyncio.create_task(self.timers.run_forever(self._stop), name="devhost:timers")
            )
        for runner in self.queue_runners:
            self._loops.append(
                asyncio.create_task(runner.run_forever(self._stop), name=f"devhost:{runner.queue}")
            )

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop the loops, give running invocations the grace period, then cancel what is left."""
        self._stop.set()
        await finish_or_cancel(self._loops, grace_seconds)
        self._loops.clear()
        await self.timers.stop(grace_seconds)
        for runner in self.queue_runners:
            await runner.stop(grace_seconds)

    def banner(self, base_url: str) -> str:
        """What `func start` prints: each function with its trigger."""
        lines = ["", "Functions:", ""]
        prefix = f"{base_url.rstrip('/')}/{self.route_prefix}".rstrip("/")
        for http in self.app.http:
            methods = ",".join(sorted(http.methods)) if http.methods else "ALL"
            route = http.route.template.strip("/")
            lines.append(f"        {http.target.name}: [{methods}] {prefix}/{route}".rstrip("/"))
        for timer in self.app.timers:
            upcoming = self.timers.schedule_of(timer.target.name)
            startup = ", runs on startup" if timer.run_on_startup else ""
            nxt = f", next {upcoming.isoformat()}" if upcoming else ""
            lines.append(
                f"        {timer.target.name}: timerTrigger (schedule {timer.schedule_text!r}{nxt}{startup})"
            )
        for runner in self.queue_runners:
            waiting = self._queue_depths.get(runner.queue)
            depth = f", {waiting} waiting" if waiting is not None else ""
            lines.append(
                f"        {runner.function.target.name}: serviceBusTrigger (queue {runner.queue!r}{depth})"
            )
        for function in self.unserved_queues:
            lines.append(
                f"        {function.target.name}: serviceBusTrigger (queue {function.queue_name!r}) NOT RUN: "
                "the dev host feeds queue triggers only from the embedded bus (PSC_BUS=embedded)"
            )
        for name in self.app.disabled:
            lines.append(f"        {name}: disabled by AzureWebJobs.{name}.Disabled")
        if len(lines) == 3:
            lines.append("        (none)")
        lines.append("")
        return "\n".join(lines)


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture (it re-raises SIGINT after shutdown, which would
    interrupt our cleanup); `run_server` installs handlers that just ask it to exit."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


async def run_server(
    host: DevHost,
    *,
    bind: str = "127.0.0.1",
    port: int = 7071,
    sock: socket.socket | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM or `stop`; the host's loops run alongside and stop gracefully.
    `ready(base_url)` is called once the socket is listening."""
    config = uvicorn.Config(
        host.asgi_app,
        host=bind,
        port=port,
        lifespan="off",
        access_log=False,  # access lines carry query strings, which may hold PHI
        log_config=None,
        server_header=False,
    )
    server = _Server(config)
    await host.start()
    watchers = [asyncio.create_task(_announce(server, ready, sock, bind, port))]
    if stop is not None:
        watchers.append(asyncio.create_task(_exit_on(stop, server)))
    try:
        with _exit_on_signals(server):
            await server.serve(sockets=[sock] if sock is not None else None)
    except SystemExit:
        # uvicorn exits this way when it cannot bind; it has logged the OS error.
        raise StartError(f"could not listen on {bind}:{port} (is another host running?)") from None
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await host.stop()


async def _announce(
    server: _Server, ready: Callable[[str], None] | None, sock: socket.socket | None, bind: str, port: int
) -> None:
    await server.ready.wait()
    if sock is not None:
        bind, port = sock.getsockname()[:2]
    elif server.servers and server.servers[0].sockets:
        bind, port = server.servers[0].sockets[0].getsockname()[:2]
    if ready is not None:
        ready(f"http://{bind}:{port}")


async def _exit_on(stop: asyncio.Event, server: _Server) -> None:
    await stop.wait()
    server.should_exit = True


@contextlib.contextmanager
def _exit_on_signals(server: _Server) -> Iterator[None]:
    def request_exit(*_: Any) -> None:
        if server.should_exit:
            server.force_exit = True  # a second Ctrl+C stops waiting for open connections
        server.should_exit = True

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, request_exit)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            # Windows event loops have no add_signal_handler.
            previous[sig] = signal.signal(sig, request_exit)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
