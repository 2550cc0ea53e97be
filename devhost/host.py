"""One function app served the way `func start` serves it: HTTP under the route prefix, the Event
Grid webhook, timers on their schedules, Service Bus queue and topic triggers (sessions too) from
the embedded bus, Cosmos DB triggers from the embedded store's change feed; plus the uvicorn server
around it."""

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
from starlette.types import ASGIApp, Receive, Scope, Send

from devhost.change_feed import ChangeFeedRunner
from devhost.config_files import HostConfig
from devhost.cors import PlatformCors
from devhost.discovery import ChangeFeedFunction, DiscoveredApp, QueueFunction, TopicFunction
from devhost.errors import StartError
from devhost.event_grid import EventGridHost, is_webhook
from devhost.http_host import MAX_REQUEST_BYTES, HttpHost
from devhost.invocation import Invoker
from devhost.pacing import finish_or_cancel
from devhost.queues import QueueRunner
from devhost.sessions import SessionRunner
from devhost.timers import TimerScheduler
from shared.kernel.clock import Clock
from shared.kernel.documents import ChangeFeed, DocumentStore
from shared.kernel.messages import DeadLetterAdmin, QueueReceiver, SessionReceiver

logger = logging.getLogger("psc.devhost")


class _Dispatch:
    """The host's own Event Grid webhook beside the app's HTTP routes (which may not start with
    `runtime`, so the two never overlap)."""

    def __init__(self, http: ASGIApp, event_grid: EventGridHost) -> None:
        self._http = http
        self._event_grid = event_grid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_webhook(scope["path"]):
            await self._event_grid(scope, receive, send)
        else:
            await self._http(scope, receive, send)


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
        store: DocumentStore | None = None,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        config = host_config or HostConfig()
        self.app = app
        self.route_prefix = config.route_prefix
        self.http = HttpHost(
            app.http, invoker, route_prefix=config.route_prefix, max_request_bytes=max_request_bytes
        )
        self.event_grid = EventGridHost(app.event_grid, invoker)
        # CORS always in front of the app's routes, as on Flex Consumption: with no origin listed a
        # preflight still gets 204. The host's own Event Grid webhook is not a browser endpoint.
        self.asgi_app: ASGIApp = _Dispatch(PlatformCors(self.http, cors_origins), self.event_grid)
        self.timers = TimerScheduler(app.timers, clock, invoker)
        self._receiver = receiver
        self._store = store
        self.queue_runners: list[QueueRunner] = []
        self.session_runners: list[SessionRunner] = []
        self.change_feed_runners: list[ChangeFeedRunner] = []
        self.unserved_queues: list[QueueFunction | TopicFunction] = []
        self.unserved_change_feeds: list[ChangeFeedFunction] = []
        renewal = config.max_auto_lock_renewal
        bus_functions: list[QueueFunction | TopicFunction] = [*app.queues, *app.topics]
        for function in bus_functions:
            if receiver is None:
                self.unserved_queues.append(function)
            elif isinstance(function, TopicFunction) and function.sessions:
                if not isinstance(receiver, SessionReceiver):
                    self.unserved_queues.append(function)
                    continue
                self.session_runners.append(
                    SessionRunner(
                        function,
                        receiver,
                        clock,
                        invoker,
                        max_concurrent_sessions=config.max_concurrent_sessions,
                        session_idle_timeout=config.session_idle_timeout,
                        max_auto_lock_renewal=renewal,
                    )
                )
            else:
                self.queue_runners.append(
                    QueueRunner(
                        function,
                        receiver,
                        clock,
                        invoker,
                        max_concurrent_calls=config.max_concurrent_calls,
                        max_auto_lock_renewal=renewal,
                    )
                )
        for change_feed in app.change_feeds:
            if isinstance(store, ChangeFeed):
                self.change_feed_runners.append(ChangeFeedRunner(change_feed, store, clock, invoker))
            else:
                self.unserved_change_feeds.append(change_feed)
        self._queue_depths: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def check_queues(self) -> None:
        """Fail now, naming the entity, if a trigger's queue, topic or subscription is not one the
        bus knows."""
        if not isinstance(self._receiver, DeadLetterAdmin):
            return
        unknown, mismatched = [], []
        runners: list[QueueRunner | SessionRunner] = [*self.queue_runners, *self.session_runners]
        requires_session = getattr(self._receiver, "requires_session", None)
        for runner in runners:
            where = f"function {runner.function.target.name}: {runner.function.describe()}"
            try:
                depths = await self._receiver.depths([runner.queue])
            except KeyError:
                unknown.append(where)
                continue
            self._queue_depths[runner.queue] = sum(d.active for d in depths)
            sessions = isinstance(runner, SessionRunner)
            if requires_session is not None and requires_session(runner.queue) != sessions:
                # The host cannot open a session receiver on an entity without sessions, nor the reverse.
                needs = "requires" if not sessions else "does not use"
                mismatched.append(f"{where}: the entity {needs} sessions; set is_sessions_enabled to match")
        if unknown:
            raise StartError(
                "these queues or subscriptions are not in the bus catalogue (shared/kernel/catalog.py QUEUES,"
                " TOPICS):\n  " + "\n  ".join(unknown)
            )
        if mismatched:
            raise StartError("these triggers do not match their entity:\n  " + "\n  ".join(mismatched))

    async def check_change_feeds(self) -> None:
        """Fail now, naming it, if a Cosmos DB trigger's container or lease container is not in the
        store's catalogue, or the lease container is not partitioned by /id (the trigger requires it)."""
        if self._store is None:
            return
        problems = []
        for runner in self.change_feed_runners:
            function = runner.function
            for name in (function.container, function.lease_container):
                try:
                    spec = self._store.container(name).spec
                except KeyError:
                    problems.append(
                        f"function {function.target.name}: container {name!r} is not in the catalogue"
                    )
                    continue
                if name == function.lease_container and spec.partition_key_path != "/id":
                    where = f"function {function.target.name}: lease container {name!r}"
                    problems.append(f"{where} must be partitioned by /id")
        if problems:
            raise StartError(
                "Cosmos DB triggers that cannot run (shared/kernel/catalog.py CONTAINERS):\n  "
                + "\n  ".join(problems)
            )

    async def start(self) -> None:
        """Start the timer loop and one loop per queue, subscription and change feed (in the
        caller's context)."""
        self._stop.clear()
        if self.app.timers:
            self._loops.append(
                asyncio.create_task(self.timers.run_forever(self._stop), name="devhost:timers")
            )
        bus_runners: list[QueueRunner | SessionRunner] = [*self.queue_runners, *self.session_runners]
        for runner in bus_runners:
            self._loops.append(
                asyncio.create_task(runner.run_forever(self._stop), name=f"devhost:{runner.queue}")
            )
        for change_feed in self.change_feed_runners:
            self._loops.append(
                asyncio.create_task(
                    change_feed.run_forever(self._stop), name=f"devhost:{change_feed.function.lease_id}"
                )
            )

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop the loops, give running invocations the grace period, then cancel what is left."""
        self._stop.set()
        await finish_or_cancel(self._loops, grace_seconds)
        self._loops.clear()
        await self.timers.stop(grace_seconds)
        for runner in self.queue_runners:
            await runner.stop(grace_seconds)
        for session_runner in self.session_runners:
            await session_runner.stop(grace_seconds)
        for change_feed in self.change_feed_runners:
            await change_feed.stop()

    def banner(self, base_url: str) -> str:
        """What `func start` prints: each function with its trigger."""
        lines = ["", "Functions:", ""]
        prefix = f"{base_url.rstrip('/')}/{self.route_prefix}".rstrip("/")
        for http in self.app.http:
            methods = ",".join(sorted(http.methods)) if http.methods else "ALL"
            route = http.route.template.strip("/")
            lines.append(f"        {http.target.name}: [{methods}] {prefix}/{route}".rstrip("/"))
        for event_grid in self.app.event_grid:
            url = f"{base_url.rstrip('/')}/runtime/webhooks/EventGrid?functionName={event_grid.target.name}"
            lines.append(f"        {event_grid.target.name}: eventGridTrigger (POST {url})")
        for timer in self.app.timers:
            upcoming = self.timers.schedule_of(timer.target.name)
            startup = ", runs on startup" if timer.run_on_startup else ""
            nxt = f", next {upcoming.isoformat()}" if upcoming else ""
            retry = f", {timer.retry.describe()}" if timer.retry else ""
            schedule = f"schedule {timer.schedule_text!r}{nxt}{startup}{retry}"
            lines.append(f"        {timer.target.name}: timerTrigger ({schedule})")
        runners: list[QueueRunner | SessionRunner] = [*self.queue_runners, *self.session_runners]
        for runner in runners:
            waiting = self._queue_depths.get(runner.queue)
            depth = f", {waiting} waiting" if waiting is not None else ""
            function_name, described = runner.function.target.name, runner.function.describe()
            lines.append(f"        {function_name}: serviceBusTrigger ({described}{depth})")
        for function in self.unserved_queues:
            lines.append(
                f"        {function.target.name}: serviceBusTrigger ({function.describe()}) NOT RUN: "
                "the dev host feeds Service Bus triggers only from the embedded bus (PSC_BUS=embedded)"
            )
        for change_feed in self.change_feed_runners:
            feed = change_feed.function
            lines.append(f"        {feed.target.name}: cosmosDBTrigger ({feed.describe()})")
        for unserved in self.unserved_change_feeds:
            lines.append(
                f"        {unserved.target.name}: cosmosDBTrigger (container {unserved.container!r})"
                " NOT RUN: the dev host reads change feeds only from the embedded store (PSC_STORE=embedded)"
            )
        for name in self.app.retry_ignored:
            lines.append(
                f"        {name}: retry policy not applied: the host retries this trigger its own way"
                " (Service Bus: redelivery up to the max delivery count)"
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
