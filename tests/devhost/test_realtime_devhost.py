"""The dev host runs the embedded real-time hub beside the API: the banner says where, function code
in the host pushes through it, and code in another process (a test, `func start` beside
`python -m devhost hub`) reaches it over HTTP with the shared key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.realtime_server import describe, start_beside_host
from shared.adapters.webpubsub_realtime import WebPubSubRealtime
from shared.runtime import build_runtime
from tests.conftest import make_settings
from tests.devhost.test_server import DEVHOST, REPO_ROOT, loopback_socket
from tests.realtime_support import HUB_KEY, connect

TINY_APP = """
import azure.functions as func
from shared.runtime import get_runtime

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

@app.route(route="push", methods=["POST"])
async def push(req: func.HttpRequest) -> func.HttpResponse:
    runtime = await get_runtime()
    await runtime.realtime.send_to_group("supervisors", {"from": "function"})
    return func.HttpResponse(status_code=202)
"""


def free_port() -> int:
    with loopback_socket() as probe:
        return int(probe.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "Values": {
                    "PSC_AUTH_MODE": "dev",
                    "PSC_DEV_JWT_SECRET": "a-dev-secret-that-is-long-enough-0123456789",
                    "PSC_REALTIME_KEY": HUB_KEY,
                }
            }
        )
    )
    (tmp_path / "tiny_app.py").write_text(TINY_APP)
    return tmp_path


def start(project: Path, *args: str, ready: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSC_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    process = subprocess.Popen(
        [*DEVHOST, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if ready in line:
            return process, "".join(output)
    process.wait(timeout=10)
    raise AssertionError("did not start:\n" + "".join(output))


@pytest.fixture
def stop_after() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def interrupt(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=20)
    assert process.returncode == 0, rest
    return rest


async def test_the_dev_host_runs_the_hub_beside_the_api_and_its_functions_push_through_it(
    project: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    port, hub_port = free_port(), free_port()
    process, banner = start(
        project,
        *(
            "--app",
            "tiny_app:app",
            "--port",
            str(port),
            "--realtime-port",
            str(hub_port),
            "--data-dir",
            "data",
        ),
        ready="Dev host listening",
    )
    stop_after.append(process)
    assert (
        f"Real-time hub (Azure Web PubSub protocols, json.webpubsub.azure.v1): ws://127.0.0.1:{hub_port}/client/hubs/psc"
        in banner
    )

    # This test is another process: it reaches the hub over HTTP with the key from the settings.
    realtime = WebPubSubRealtime(f"http://127.0.0.1:{hub_port}", "psc", access_key=HUB_KEY)
    supervisor = await connect(await realtime.client_url("sup-1", ["supervisors"]))
    try:
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"http://127.0.0.1:{port}/api/push", timeout=10)
        assert answer.status_code == 202
        assert (await supervisor.next_message())["data"] == {"from": "function"}
        await realtime.send_to_group("supervisors", {"from": "another process"})
        assert (await supervisor.next_message())["data"] == {"from": "another process"}
    finally:
        await supervisor.close()
        await realtime.close()
    interrupt(process)


async def test_python_m_devhost_hub_runs_the_hub_alone_for_func_start(
    project: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    hub_port = free_port()
    process, banner = start(project, "hub", "--port", str(hub_port), ready="Real-time hub listening")
    stop_after.append(process)
    assert f"ws://127.0.0.1:{hub_port}/client/hubs/psc" in banner
    realtime = WebPubSubRealtime(f"http://127.0.0.1:{hub_port}", "psc", access_key=HUB_KEY)
    client = await connect(await realtime.client_url("agent-1", ["agent.agent-1"]))
    try:
        await realtime.send_to_group("agent.agent-1", {"kind": "offer"})
        assert (await client.next_message())["data"] == {"kind": "offer"}
    finally:
        await client.close()
        await realtime.close()
    interrupt(process)


def test_the_hub_alone_needs_the_shared_key(project: Path) -> None:
    (project / "local.settings.json").write_text(
        json.dumps({"Values": {"PSC_AUTH_MODE": "dev", "PSC_DEV_JWT_SECRET": "x" * 40}})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSC_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [*DEVHOST, "hub", "--port", "0"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "PSC_REALTIME_KEY" in done.stderr


async def test_the_host_hands_its_runtime_the_hub_it_started_with_a_key_made_for_the_run(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, PSC_REALTIME_PORT="0")
    assert settings.realtime_key is None
    hub, served = await start_beside_host(settings, bind="127.0.0.1", port=None)
    assert hub is not None
    try:
        assert served.realtime_port == hub.port != 0
        assert len(served.realtime_key or "") >= 32
        runtime = await build_runtime(served)
        try:
            client = await connect(await runtime.realtime.client_url("sup-1", ["supervisors"]))
            await runtime.realtime.send_to_group("supervisors", {"n": 1})
            assert (await client.next_message())["data"] == {"n": 1}
            await client.close()
        finally:
            await runtime.close()
    finally:
        await hub.stop()


async def test_with_azure_web_pubsub_configured_no_hub_starts(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, PSC_REALTIME="webpubsub", PSC_WEBPUBSUB_ENDPOINT="https://psc.webpubsub.azure.com"
    )
    hub, served = await start_beside_host(settings, bind="127.0.0.1", port=None)
    assert hub is None
    assert served is settings
    assert describe(settings, None) == "Real time: Azure Web PubSub https://psc.webpubsub.azure.com (hub psc)"
