"""`python -m devhost`: serve the function app locally (with the embedded real-time hub beside it);
`python -m devhost token`: print a dev token; `python -m devhost hub`: run only the real-time hub (for
`func start`, whose functions then reach it through PSC_REALTIME_PORT and PSC_REALTIME_KEY).

Exit codes: 0 after a normal stop, 2 when settings or the app cannot be used (the message says
which setting or function), 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from devhost.config_files import (
    HostConfig,
    LocalSettings,
    apply_to_environment,
    find_settings_file,
    read_host_json,
    read_local_settings,
)
from devhost.discovery import DiscoveredApp, discover, load_app
from devhost.errors import StartError
from devhost.host import DevHost, run_server
from devhost.http_host import request_body_limit
from devhost.invocation import Invoker
from devhost.realtime_server import EmbeddedHub, describe, start_beside_host
from shared.auth.dev_tokens import issue_dev_token
from shared.config import Settings, get_settings
from shared.kernel.clock import SystemClock
from shared.kernel.errors import ConfigError
from shared.kernel.messages import QueueReceiver
from shared.runtime import Runtime, build_runtime, use_runtime

logger = logging.getLogger("psc.devhost")

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
DEFAULT_PORT = 7071


def main(argv: Sequence[str] | None = None, *, root: Path | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = root or Path.cwd()
    if args[:1] == ["token"]:
        return token_command(args[1:], root=root)
    if args[:1] == ["hub"]:
        return hub_command(args[1:], root=root)
    return serve_command(args, root=root)


def serve_command(argv: Sequence[str], *, root: Path) -> int:
    args = _serve_parser().parse_args(argv)
    _configure_logging()
    try:
        local = prepare_environment(args.settings, args.data_dir, root=root)
        settings = validated_settings()
        host_config = read_host_json(root / "host.json")
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        discovered = discover(load_app(args.app), os.environ)
        port = args.port or local.local_http_port or DEFAULT_PORT
        asyncio.run(
            _serve(
                settings,
                discovered,
                host_config,
                bind=args.host,
                port=port,
                realtime_port=args.realtime_port,
                demo="week" if args.demo and args.demo_week else "data" if args.demo else None,
            )
        )
    except (StartError, ConfigError) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def token_command(argv: Sequence[str], *, root: Path, out: TextIO | None = None) -> int:
    args = _token_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        prepare_environment(args.settings, None, root=root)
        mode = os.environ.get("PSC_AUTH_MODE", "entra")
        if mode != "dev":
            raise StartError(f"dev tokens need PSC_AUTH_MODE=dev, but it is {mode!r}")
        settings = validated_settings()
    except (StartError, ConfigError) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    assert settings.dev_jwt_secret is not None  # dev mode requires it (settings validation)
    token = issue_dev_token(
        settings.dev_jwt_secret,
        sub=args.sub,
        roles=args.role,
        patient_id=args.patient_id,
        name=args.name,
        ttl_seconds=args.ttl,
    )
    print(token, file=out)
    return EXIT_OK


def hub_command(argv: Sequence[str], *, root: Path) -> int:
    args = _hub_parser().parse_args(argv)
    _configure_logging()
    try:
        prepare_environment(args.settings, None, root=root)
        settings = validated_settings()
        if not settings.realtime_key:
            raise StartError(
                "PSC_REALTIME_KEY must be set: the function host signs its calls with the same key"
            )
        asyncio.run(_serve_hub(settings, bind=args.host, port=args.port))
    except (StartError, ConfigError) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


async def _serve_hub(settings: Settings, *, bind: str, port: int | None) -> None:
    assert settings.realtime_key is not None
    chosen = settings.realtime_port if port is None else port
    hub = EmbeddedHub(settings.realtime_key, hub=settings.webpubsub_hub, bind=bind, port=chosen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with hub:
        print(describe(settings, hub), flush=True)
        print("Real-time hub listening (Ctrl+C to stop)", flush=True)
        await stop.wait()


def prepare_environment(settings_file: Path | None, data_dir: Path | None, *, root: Path) -> LocalSettings:
    """Load local settings into os.environ (the environment wins); `--data-dir` wins over both."""
    local = read_local_settings(find_settings_file(settings_file, root))
    apply_to_environment(local.values)
    if data_dir is not None:
        os.environ["PSC_DATA_DIR"] = str(data_dir)
    return local


def validated_settings() -> Settings:
    # The environment was just changed: settings read before that must not be reused.
    get_settings.cache_clear()
    return get_settings()


async def _serve(
    settings: Settings,
    discovered: DiscoveredApp,
    host_config: HostConfig,
    *,
    bind: str,
    port: int,
    realtime_port: int | None,
    demo: str | None,
) -> None:
    if settings.store == "embedded" or settings.bus == "embedded":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The hub first: the runtime's adapter needs its port and key.
    hub, settings = await start_beside_host(settings, bind=bind, port=realtime_port)
    try:
        await _serve_app(settings, discovered, host_config, bind=bind, port=port, demo=demo, hub=hub)
    finally:
        if hub is not None:
            await hub.stop()


async def _serve_app(
    settings: Settings,
    discovered: DiscoveredApp,
    host_config: HostConfig,
    *,
    bind: str,
    port: int,
    demo: str | None,
    hub: EmbeddedHub | None,
) -> None:
    runtime = await build_runtime(settings, SystemClock())
    # Installed here so every task the host creates from now on inherits it.
    with use_runtime(runtime):
        try:
            if demo:
                await _seed_demo(
                    runtime, _base_url(bind, port, host_config.route_prefix), week=demo == "week"
                )
            receiver = runtime.bus if isinstance(runtime.bus, QueueReceiver) else None
            host = DevHost(
                discovered,
                clock=runtime.clock,
                invoker=Invoker(runtime),
                receiver=receiver,
                host_config=host_config,
                cors_origins=settings.cors_allowed_origins,
                store=runtime.store,
                max_request_bytes=request_body_limit(os.environ),
            )
            await host.check_queues()
            await host.check_change_feeds()

            def announce(base_url: str) -> None:
                print(host.banner(base_url), flush=True)
                print(describe(settings, hub), flush=True)
                print(f"Dev host listening on {base_url} (Ctrl+C to stop)", flush=True)

            await run_server(host, bind=bind, port=port, ready=announce)
        finally:
            await runtime.close()


async def _seed_demo(runtime: Runtime, base_url: str, *, week: bool = True) -> None:
    try:
        demo = importlib.import_module("shared.demo")
    except ModuleNotFoundError as exc:
        if exc.name not in ("shared.demo", "shared"):
            raise
        print("devhost: --demo needs shared/demo.py, which this checkout lacks; no demo data seeded")
        return
    seed = demo.seed_demo
    parameters = inspect.signature(seed).parameters
    if "history" in parameters:
        seeded = await seed(runtime, base_url=base_url, history=week)
    elif "base_url" in parameters:
        seeded = await seed(runtime, base_url=base_url)
    else:
        seeded = await seed(runtime)
    for line in seeded.lines:
        print(line)
    unprinted = {
        label: token
        for label, token in seeded.tokens.items()
        if not any(token in line for line in seeded.lines)
    }
    if unprinted:
        print("Demo bearer tokens:")
        for label, token in unprinted.items():
            print(f"  {label}: {token}")
    print(flush=True)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        observability = importlib.import_module("shared.kernel.observability")
    except ModuleNotFoundError:
        return
    # The project's PHI guard on every handler: the functions log through the same process.
    observability.install_logging()


def _base_url(bind: str, port: int, route_prefix: str) -> str:
    shown = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind  # noqa: S104 - comparing, not binding
    return f"http://{shown}:{port}/{route_prefix}".rstrip("/")


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Run the function app locally as the Functions host would (no Azure needed). "
        "`python -m devhost token --help` prints dev tokens.",
    )
    parser.add_argument("--port", type=int, default=None, help=f"HTTP port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder for embedded data (PSC_DATA_DIR)")
    parser.add_argument("--demo", action="store_true", help="seed demo data and print demo tokens")
    parser.add_argument(
        "--demo-week",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --demo on a fresh data folder, also a week of history made through the services"
        " (default on; --no-demo-week for a quicker first start and fewer events to relay)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="settings file (default local.settings.json, else the sample)",
    )
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument(
        "--realtime-port",
        type=_port,
        default=None,
        help="port of the embedded real-time hub (default PSC_REALTIME_PORT, 7072; 0: any free port)",
    )
    return parser


def _hub_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devhost hub",
        description="Run only the embedded real-time hub (Web PubSub protocols), e.g. beside `func start`.",
    )
    parser.add_argument("--port", type=_port, default=None, help="port (default PSC_REALTIME_PORT, 7072)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--settings", type=Path, default=None, help="settings file")
    return parser


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0-65535")
    return value


def _token_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devhost token", description="Print a dev-mode bearer token (PSC_AUTH_MODE=dev)."
    )
    parser.add_argument("--sub", required=True, help="subject: the user's id")
    parser.add_argument("--role", action="append", required=True, help="app role; repeat for several")
    parser.add_argument("--patient-id", default=None, help="patient id claim (for Patient tokens)")
    parser.add_argument("--name", default=None, help="display name (defaults to the subject)")
    parser.add_argument(
        "--ttl", type=_positive_int, default=8 * 3600, help="lifetime in seconds (default 8 h)"
    )
    parser.add_argument("--settings", type=Path, default=None, help="settings file")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value
