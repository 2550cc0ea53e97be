"""Where the tests find real Azure-compatible endpoints, or why they skip.

- Cosmos DB: `PSC_TEST_COSMOS_ENDPOINT` (+ `PSC_TEST_COSMOS_KEY`, default the emulator's public key);
  else a Cosmos DB emulator container via testcontainers when a Docker engine answers (started once
  per test session, stopped at exit); else skip.
- Service Bus: `PSC_TEST_SERVICEBUS_CONNECTION` (a namespace or the emulator; the queues `work` and
  `other`, and the topic `contract-events` with subscriptions `all`, `booked` (rules on the labels
  appointment.booked and appointment.moved) and `ordered` (sessions) must exist there, see
  tests/contract/conftest.py CONTRACT_QUEUES and CONTRACT_TOPICS); else skip.
- Azurite (blob): `PSC_TEST_AZURITE_BLOB` (a connection string); else a local Azurite process from
  `node_modules/.bin/azurite` (started once per session); else skip — but never in CI (`CI=true`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.azure_credentials import COSMOS_EMULATOR_WELL_KNOWN_KEY, is_local_endpoint

REPO = Path(__file__).resolve().parents[2]
COSMOS_SKIP = (
    "Cosmos DB contract suite skipped: set PSC_TEST_COSMOS_ENDPOINT"
    " or run with a Docker engine (testcontainers)"
)
SERVICEBUS_SKIP = (
    "Service Bus suite skipped: set PSC_TEST_SERVICEBUS_CONNECTION to a namespace or emulator connection"
    " string whose queues `work` and `other` exist (max delivery count 3, lock 30 s on `work`) and whose"
    " topic `contract-events` (duplicate window 20 s) has subscriptions `all`, `booked` (correlation"
    " rules on labels appointment.booked, appointment.moved) and `ordered` (sessions), each with max"
    " delivery count 3 and lock 30 s"
)


@dataclass(frozen=True)
class CosmosEndpoint:
    url: str
    key: str
    emulator: bool


_cosmos: CosmosEndpoint | None = None
_cosmos_failure: str | None = None
_azurite: str | None = None
_azurite_failure: str | None = None


def docker_answers(timeout: float = 3.0) -> bool:
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def cosmos_endpoint() -> CosmosEndpoint:
    """The Cosmos endpoint to test against; skips the calling test with the reason if none."""
    global _cosmos, _cosmos_failure
    if _cosmos is not None:
        return _cosmos
    if _cosmos_failure is not None:
        pytest.skip(_cosmos_failure)
    url = os.environ.get("PSC_TEST_COSMOS_ENDPOINT")
    if url:
        key = os.environ.get("PSC_TEST_COSMOS_KEY") or COSMOS_EMULATOR_WELL_KNOWN_KEY
        _cosmos = CosmosEndpoint(url, key, emulator=is_local_endpoint(url))
        return _cosmos
    if not docker_answers():
        _cosmos_failure = COSMOS_SKIP
        pytest.skip(_cosmos_failure)
    try:
        from testcontainers.community.cosmosdb import CosmosDBNoSQLEndpointContainer

        container: Any = CosmosDBNoSQLEndpointContainer()
        container.start()
    except Exception as exc:  # an emulator that cannot start is an environment problem: say so
        _cosmos_failure = f"Cosmos DB emulator container did not start: {type(exc).__name__}: {exc}"
        pytest.skip(_cosmos_failure)
    atexit.register(container.stop)
    _cosmos = CosmosEndpoint(container.url, container.key, emulator=True)
    return _cosmos


def servicebus_connection() -> str:
    connection = os.environ.get("PSC_TEST_SERVICEBUS_CONNECTION")
    if not connection:
        pytest.skip(SERVICEBUS_SKIP)
    return connection


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _azurite_connection(port: int) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azurite exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.2)
    raise RuntimeError("azurite did not open its blob port within 30 s")


def _start_azurite() -> str:
    binary = REPO / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise FileNotFoundError(
            "node_modules/.bin/azurite-blob is missing: run `npm install --no-save azurite@3` in the repo"
        )
    location = Path(tempfile.mkdtemp(prefix="psc-azurite-"))
    port = _free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--silent",
            "--location",
            str(location),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(location, ignore_errors=True)

    atexit.register(stop)
    _wait_for_port(port, process, time.monotonic() + 30)
    return _azurite_connection(port)


def azurite_blob_connection() -> str:
    """An Azurite blob connection string; skips (fails in CI) when Azurite is unavailable."""
    global _azurite, _azurite_failure
    if _azurite is not None:
        return _azurite
    configured = os.environ.get("PSC_TEST_AZURITE_BLOB")
    if configured:
        _azurite = configured
        return _azurite
    if _azurite_failure is None:
        try:
            _azurite = _start_azurite()
            return _azurite
        except Exception as exc:
            _azurite_failure = f"Azurite unavailable: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{_azurite_failure} (CI must run the blob archive suite: set PSC_TEST_AZURITE_BLOB)")
    pytest.skip(_azurite_failure)
