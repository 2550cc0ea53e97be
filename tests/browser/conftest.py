"""A real browser against the real app: Debian's Chromium (or `PSC_CHROMIUM`) driven headless by
Playwright, and the dev host started as `scripts/run.sh` starts it (`python -m devhost --demo`),
here on a free port, a fresh data folder and any free port for its real-time hub, with a hub key
the tests know (so they can mint client URLs and push frames as the app's own adapter does).

Without a Chromium the browser tests skip, saying so; everything else about the page is still
tested without a browser (tests/dashboard/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = (
    str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
)
HUB_KEY = "browser-test-hub-key-0123456789abcdef-0123"
# As the machine notes run Chromium as root in a closed network: no sandbox (root), no GPU, and
# none of Chromium's own background traffic (which would be refused, or look like our requests).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
NO_CHROMIUM = (
    "no Chromium to drive: install Debian's `chromium` (scripts/test.sh does, as root) or set "
    "PSC_CHROMIUM to a Chromium executable"
)


def find_chromium() -> str | None:
    named = os.environ.get("PSC_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip(NO_CHROMIUM)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class DevHost:
    base_url: str
    hub_port: int
    tokens: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def hub_origin(self) -> str:
        return f"ws://127.0.0.1:{self.hub_port}"


def _start_dev_host(
    data_dir: Path, extra_env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[str], DevHost]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PSC_", "COSMOS", "ServiceBus"))}
    env.update(json.loads((ROOT / "local.settings.sample.json").read_text())["Values"])
    env.update({"PSC_REALTIME_KEY": HUB_KEY, **extra_env})
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "devhost",
            *args,
            "--port",
            str(port),
            "--realtime-port",
            "0",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Dev host listening on"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        process.kill()
        pytest.fail("the dev host did not start:\n" + "\n".join(lines[-30:]))
    text = "\n".join(lines)
    hub = re.search(r"ws://127\.0\.0\.1:(\d+)/client/hubs/", text)
    assert hub, text
    tokens = dict(re.findall(r"^  ([a-z-]+): (ey[\w.-]+)$", text, re.M))
    return process, DevHost(f"http://127.0.0.1:{port}", int(hub.group(1)), tokens, lines)


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def dev_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """The app with its demo data, in dev mode (the sample settings)."""
    process, host = _start_dev_host(tmp_path_factory.mktemp("dashboard-devhost"), {}, "--demo")
    try:
        assert "supervisor" in host.tokens, host.lines
        yield host
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def entra_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """The app in entra mode (a made-up tenant: nothing reaches Entra, the page's calls to it are
    answered by the test)."""
    entra = {
        "PSC_AUTH_MODE": "entra",
        "PSC_ENTRA_TENANT_ID": "11111111-2222-3333-4444-555555555555",
        "PSC_ENTRA_CLIENT_ID": "66666666-7777-8888-9999-000000000000",
    }
    process, host = _start_dev_host(tmp_path_factory.mktemp("dashboard-entra"), entra)
    try:
        yield host
    finally:
        _stop(process)


@dataclass
class Watch:
    """What a page did: console errors, uncaught exceptions, every request and WebSocket URL."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def foreign(self, *origins: str) -> list[str]:
        return [
            url
            for url in [*self.requests, *self.sockets]
            if not url.startswith(tuple(f"{o}/" for o in origins))
        ]


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(
    browser: Any, *, width: int = 1280, height: int = 900, timezone_id: str | None = None
) -> tuple[Any, Watch]:
    """A new page in a fresh context (en-US, so numbers read as the tests expect), watched."""
    context = await browser.new_context(
        viewport={"width": width, "height": height}, locale="en-US", timezone_id=timezone_id
    )
    page = await context.new_page()
    watch = Watch()
    page.on("console", lambda message: watch.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: watch.requests.append(request.url))
    page.on("websocket", lambda socket: watch.sockets.append(socket.url))
    return page, watch


SCREENSHOTS = ROOT / ".devhost" / "screenshots"
