"""The real server: uvicorn on a loopback port, and `python -m devhost` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import httpx

from devhost.config_files import HostConfig
from devhost.host import DevHost, run_server
from devhost.invocation import Invoker
from shared.kernel.clock import SystemClock
from tests.devhost.conftest import discovered, new_app

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVHOST = [sys.executable, "-m", "devhost"]


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_uvicorn_serves_the_functions_and_runs_timers_alongside() -> None:
    app = new_app()
    startup_runs: list[bool] = []

    @app.route(route="hello/{name}", methods=["GET"])
    async def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"hello {req.route_params['name']}")

    @app.timer_trigger(schedule="0 0 3 * * *", arg_name="timer", run_on_startup=True)
    async def nightly(timer: func.TimerRequest) -> None:
        startup_runs.append(timer.past_due)

    host = DevHost(
        discovered(app), clock=SystemClock(), invoker=Invoker(), receiver=None, host_config=HostConfig()
    )
    sock = loopback_socket()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(run_server(host, sock=sock, stop=stop, ready=ready.set_result))
    try:
        base_url = await asyncio.wait_for(ready, timeout=10)
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{base_url}/api/hello/world")
        assert answer.status_code == 200
        assert answer.text == "hello world"
        assert "nightly: timerTrigger (schedule '0 0 3 * * *'" in host.banner(base_url)
        assert f"hello: [GET] {base_url}/api/hello/{{name}}" in host.banner(base_url)
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=10)
        sock.close()
    assert startup_runs == [False]


def test_python_m_devhost_starts_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "Values": {
                    "PSC_AUTH_MODE": "dev",
                    "PSC_DEV_JWT_SECRET": "a-dev-secret-that-is-long-enough-0123456789",
                    "PSC_STORE": "embedded",
                    "PSC_BUS": "embedded",
                }
            }
        )
    )
    (tmp_path / "tiny_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='ping', methods=['GET'])\n"
        "async def ping(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse('pong')\n"
    )
    with loopback_socket() as probe:
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSC_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    process = subprocess.Popen(
        # --realtime-port 0: the embedded hub on any free port, never a fixed one another run holds.
        [
            *DEVHOST,
            "--app",
            "tiny_app:app",
            "--port",
            str(port),
            "--realtime-port",
            "0",
            "--data-dir",
            "data",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "Dev host listening" in line:
                break
        else:
            raise AssertionError("the dev host did not start:\n" + "".join(output))
        answer = httpx.get(f"http://127.0.0.1:{port}/api/ping", timeout=10)
        assert answer.text == "pong"
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output.append(rest)
    text = "".join(output)
    assert process.returncode == 0, text
    assert f"ping: [GET] http://127.0.0.1:{port}/api/ping" in text
    assert "invocation function=ping trigger=http outcome=200" in text
    assert (tmp_path / "data").is_dir()
