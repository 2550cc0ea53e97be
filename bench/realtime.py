"""Real-time push through the embedded hub: send → client frame latency and throughput.

    python -m bench.realtime [--clients 50] [--rounds 40] [--burst 5000] [--in-process]

The hub runs as `python -m devhost hub` in its own process (as beside `func start`; the dev host
runs it in its own event loop beside the API), unless `--in-process`. This process holds the
sender, the app's Web PubSub SDK adapter with the hub's key, and `--clients` WebSocket clients
(subprotocol json.webpubsub.azure.v1), each in a group of its own (`conv.bench-<n>.patient`,
one per live conversation). Two phases:

- latency: `--rounds` rounds, each sending one ~300-byte message to every group, one at a time;
  a message's latency is from just before `send_to_group` to the client holding the parsed frame
  (same process, same clock). This is the hub's part of the later "agent POST → patient hub frame"
  figure.
- throughput: `--burst` messages spread over the groups, 32 sends in flight; messages per second
  until every client has all of its own, and latency under that load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import websockets

from devhost.realtime_server import EmbeddedHub
from shared.adapters.webpubsub_realtime import WebPubSubRealtime
from shared.kernel.realtime import SUBPROTOCOL

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-realtime-key-0123456789abcdef-0123456789"
TEXT = "Your nurse will call you back within the next ten minutes about your appointment. " * 3
IN_FLIGHT = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Listener:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.latencies: list[float] = []
        self.count = 0
        self.expected = 0
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.connection:
            frame = json.loads(raw)
            if frame.get("type") != "message":
                continue
            self.latencies.append(time.perf_counter() - frame["data"]["t0"])
            self.count += 1
            if self.count >= self.expected:
                self.done.set()

    def expect(self, more: int) -> None:
        self.expected = self.count + more
        self.done.clear()


async def start_hub(in_process: bool) -> tuple[str, Any]:
    if in_process:
        hub = EmbeddedHub(KEY, port=0)
        await hub.start()
        return hub.endpoint, hub
    port = free_port()
    env = {**os.environ, "PSC_REALTIME_KEY": KEY, "PSC_AUTH_MODE": "dev", "PYTHONPATH": str(ROOT)}
    env["PSC_DEV_JWT_SECRET"] = "bench-dev-secret-0123456789abcdef-0123456789"
    command = [sys.executable, "-m", "devhost", "hub", "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Real-time hub listening" in line:
            return f"http://127.0.0.1:{port}", proc
    raise SystemExit(f"the hub did not start (exit {proc.wait()})")


async def stop_hub(handle: Any) -> None:
    if isinstance(handle, EmbeddedHub):
        await handle.stop()
    else:
        handle.terminate()
        handle.wait(timeout=20)


def report(label: str, latencies: list[float]) -> None:
    ms = [x * 1000 for x in latencies]
    print(
        f"{label}: n={len(ms)} p50={percentile(ms, 0.50):.2f} ms p99={percentile(ms, 0.99):.2f} ms"
        f" max={max(ms):.2f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    endpoint, handle = await start_hub(args.in_process)
    realtime = WebPubSubRealtime(endpoint, "psc", access_key=KEY)
    groups = [f"conv.bench-{n}.patient" for n in range(args.clients)]
    listeners: list[Listener] = []
    try:
        for n, group in enumerate(groups):
            url = await realtime.client_url(f"p-{n}", [group])
            connection = await websockets.connect(url, subprotocols=[SUBPROTOCOL])  # type: ignore[list-item]
            await connection.recv()  # the connected frame
            listeners.append(Listener(connection))
        where = "in this process" if args.in_process else "in its own process (python -m devhost hub)"
        print(f"hub {where}; {args.clients} clients, one group each; payload ~{len(TEXT) + 80} bytes")

        # Warm up the SDK's HTTP session and every connection.
        for listener, group in zip(listeners, groups, strict=True):
            listener.expect(1)
            await realtime.send_to_group(group, {"t0": time.perf_counter(), "text": TEXT})
        await asyncio.gather(*(listener.done.wait() for listener in listeners))
        for listener in listeners:
            listener.latencies.clear()

        for listener in listeners:
            listener.expect(args.rounds)
        for _ in range(args.rounds):
            for group in groups:
                await realtime.send_to_group(group, {"t0": time.perf_counter(), "text": TEXT})
        await asyncio.wait_for(asyncio.gather(*(listener.done.wait() for listener in listeners)), 60)
        report("latency, one send at a time", [x for listener in listeners for x in listener.latencies])

        for listener in listeners:
            listener.latencies.clear()
        per_group = max(1, args.burst // len(groups))
        for listener in listeners:
            listener.expect(per_group)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def send(group: str) -> None:
            async with gate:
                await realtime.send_to_group(group, {"t0": time.perf_counter(), "text": TEXT})

        started = time.perf_counter()
        await asyncio.gather(*(send(group) for _ in range(per_group) for group in groups))
        await asyncio.wait_for(asyncio.gather(*(listener.done.wait() for listener in listeners)), 120)
        elapsed = time.perf_counter() - started
        total = per_group * len(groups)
        print(
            f"throughput: {total} messages in {elapsed:.2f} s = {total / elapsed:,.0f} messages/s"
            f" ({IN_FLIGHT} in flight)"
        )
        report("latency under that load", [x for listener in listeners for x in listener.latencies])
    finally:
        for listener in listeners:
            listener.task.cancel()
            await listener.connection.close()
        await realtime.close()
        await stop_hub(handle)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--in-process", action="store_true", help="run the hub in this process's event loop")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
