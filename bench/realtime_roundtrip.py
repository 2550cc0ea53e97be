"""The live conversation's round trip through the dev host: agent POST → patient hub frame.

    python -m bench.realtime_roundtrip [--conversations 50] [--messages 400] [--in-flight 1]

Starts `python -m devhost --demo` (the real function app, embedded store and bus, the outbox relay,
the `realtime` consumer and the embedded hub, one process as on a laptop) on free ports and a fresh
data folder, then through its HTTP API: one demo agent with room for every conversation, the
others offline; `--conversations` escalations, each accepted by that agent; a patient WebSocket
connection per conversation (negotiated through `GET /api/me/conversations/{id}/negotiate`) and
the agent's own (`GET /api/agents/me/negotiate`). Then `--messages` agent messages, spread over
the conversations, `--in-flight` at a time; a message's round trip is from just before its POST
to the patient's connection holding the frame with that message (same process, same clock).
Prints p50/p90/p99/max and the frames seen; checks every frame arrived once and the agent's
internal notes (one conversation in ten gets one) never reached a patient.

The path measured: HTTP → the message, its key and its event in one SQLite transaction → the
relay's change feed (polled 50 ms after it drains) → the `events` topic → the `realtime`
subscription's session → `realtime_push` (watermark read, message read, two group sends,
watermark write) → the hub → the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from shared.auth.dev_tokens import issue_dev_token
from shared.kernel.realtime import SUBPROTOCOL

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
AGENT_ID = "demo-agent-1"
OTHER_AGENTS = ("demo-agent-2", "demo-agent-3")
PATIENT_ID = "p-demo-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def token(sub: str, *roles: str, patient_id: str | None = None) -> str:
    return issue_dev_token(
        SAMPLE["PSC_DEV_JWT_SECRET"], sub=sub, roles=list(roles), patient_id=patient_id, ttl_seconds=3600
    )


AGENT = token(AGENT_ID, "Agent")
PATIENT = token("demo-patient-1", "Patient", patient_id=PATIENT_ID)
BOT = token("demo-health-bot", "Bot.Escalate")
ADMIN = token("demo-admin", "Administrator")
SUPERVISOR = token("demo-supervisor", "Supervisor")


def auth(bearer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer}"}


@dataclass
class DevHost:
    """`python -m devhost --demo` in a subprocess on `data_dir`, on free ports."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PSC_", "COSMOS", "ServiceBus"))}
        env.update(SAMPLE)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devhost",
            "--demo",
            # Without the demo's week of history: its replay through the relay and consumers would
            # load the host while the round trips are measured (and push frames of old work).
            "--no-demo-week",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--realtime-port",
            str(free_port()),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await self.wait_for(lambda line: line.startswith("Dev host listening"), 90)
        asyncio.get_running_loop().create_task(self._read_rest())

    async def wait_for(self, matches: Callable[[str], bool], timeout: float) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while raw := await self.process.stdout.readline():
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                if matches(line):
                    return line
        raise RuntimeError("the dev host exited:\n" + "\n".join(self.lines[-30:]))

    async def _read_rest(self) -> None:
        # Keep the pipe drained (a full pipe would block the host's logging).
        assert self.process is not None
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())
            del self.lines[:-200]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def ok(response: httpx.Response) -> Any:
    if not response.is_success:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json() if response.content else None


async def live_conversations(client: httpx.AsyncClient, count: int, prefix: str = "rt") -> list[str]:
    """`count` conversations of the demo patient, each active with AGENT_ID (the only agent online,
    with room for all of them)."""
    profile = await ok(await client.get(f"/manage/agents/{AGENT_ID}", headers=auth(SUPERVISOR)))
    body = {k: profile[k] for k in ("name", "skills", "languages", "queues")}
    body |= {"capacity": max(count, profile["capacity"]), "queues": ["general"]}
    await ok(await client.put(f"/manage/agents/{AGENT_ID}", json=body, headers=auth(ADMIN)))
    for other in OTHER_AGENTS:
        await ok(
            await client.put(
                "/agents/me/presence", json={"status": "offline"}, headers=auth(token(other, "Agent"))
            )
        )
    await ok(await client.put("/agents/me/presence", json={"status": "available"}, headers=auth(AGENT)))
    ids = []
    for n in range(count):
        answer = await ok(
            await client.post(
                "/escalations",
                json={
                    "botConversationId": f"{prefix}-{n}",
                    "patient": {"id": PATIENT_ID},
                    "reason": "Question",
                    "triage": {"urgency": "routine"},
                    "transcript": [],
                },
                headers=auth(BOT),
            )
        )
        ids.append(answer["conversationId"])
    pending = set(ids)
    async with asyncio.timeout(60):
        while pending:
            mine = await ok(await client.get("/agents/me/conversations", headers=auth(AGENT)))
            for item in mine["items"]:
                if item["id"] in pending and item["status"] == "offered":
                    await ok(await client.post(f"/conversations/{item['id']}/accept", headers=auth(AGENT)))
                    pending.discard(item["id"])
            if pending:
                await asyncio.sleep(0.1)
    return ids


class Connection:
    """One hub WebSocket (json.webpubsub.azure.v1); group messages' data, as they arrive, with the
    monotonic time each was parsed."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.waiters: dict[tuple[str, int], asyncio.Future[float]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                frame = json.loads(raw)
                if frame.get("type") != "message":
                    continue
                now = time.perf_counter()
                data = frame["data"]
                self.frames.append((now, data))
                if data.get("kind") == "message":
                    waiter = self.waiters.pop((data["conversationId"], data["message"]["seq"]), None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(now)
        except websockets.ConnectionClosed:
            pass

    def expect(self, conversation_id: str, seq: int) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[(conversation_id, seq)] = future
        return future

    def messages(self) -> list[dict[str, Any]]:
        return [data for _, data in self.frames if data.get("kind") == "message"]

    async def close(self) -> None:
        await self.socket.close()
        self._reader.cancel()


async def connect(client: httpx.AsyncClient, path: str, bearer: str) -> Connection:
    url = (await ok(await client.get(path, headers=auth(bearer))))["url"]
    socket = await websockets.connect(url, subprotocols=[SUBPROTOCOL])  # type: ignore[list-item]
    connected = json.loads(await socket.recv())
    assert connected.get("event") == "connected", connected
    return Connection(socket)


async def post_message(client: httpx.AsyncClient, cid: str, text: str, visibility: str = "patient") -> int:
    answer = await ok(
        await client.post(
            f"/conversations/{cid}/messages",
            json={"text": text, "visibility": visibility},
            headers=auth(AGENT),
        )
    )
    return int(answer["seq"])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def run(conversations: int, messages: int, in_flight: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="psc-rt-bench-") as data:
        host = DevHost(Path(data))
        await host.start()
        try:
            async with httpx.AsyncClient(base_url=host.api, timeout=30) as client:
                ids = await live_conversations(client, conversations)
                patients = {
                    cid: await connect(client, f"/me/conversations/{cid}/negotiate", PATIENT) for cid in ids
                }
                agent = await connect(client, "/agents/me/negotiate", AGENT)
                await asyncio.sleep(1.0)  # the accept frames pass before measuring
                notes = ids[::10]
                for cid in notes:
                    await post_message(client, cid, "Internal: bench note", "internal")
                latencies: list[float] = []
                gate = asyncio.Semaphore(in_flight)

                async def one(n: int) -> None:
                    cid = ids[n % len(ids)]
                    async with gate:
                        start = time.perf_counter()
                        seq = await post_message(client, cid, f"Message {n} from your nurse")
                        # The frame may have arrived before the POST answered: look there first.
                        seen = [
                            t
                            for t, d in patients[cid].frames
                            if d.get("kind") == "message" and d["message"]["seq"] == seq
                        ]
                        arrived = (
                            seen[0] if seen else await asyncio.wait_for(patients[cid].expect(cid, seq), 10)
                        )
                        latencies.append((arrived - start) * 1000)

                started = time.perf_counter()
                await asyncio.gather(*(one(n) for n in range(messages)))
                elapsed = time.perf_counter() - started
                await asyncio.sleep(1.0)
                frames = [m for c in patients.values() for m in c.messages()]
                seen_ids = [(m["conversationId"], m["message"]["seq"]) for m in frames]
                report = {
                    "conversations": conversations,
                    "messages": messages,
                    "in_flight": in_flight,
                    "p50_ms": round(statistics.median(latencies), 1),
                    "p90_ms": round(percentile(latencies, 90), 1),
                    "p99_ms": round(percentile(latencies, 99), 1),
                    "max_ms": round(max(latencies), 1),
                    "messages_per_s": round(messages / elapsed, 1),
                    "patient_frames": len(frames),
                    "duplicates": len(seen_ids) - len(set(seen_ids)),
                    "internal_notes_seen_by_patients": sum(
                        m["message"]["visibility"] != "patient" for m in frames
                    ),
                    "agent_frames": len(agent.messages()),
                }
                for connection in [*patients.values(), agent]:
                    await connection.close()
                return report
        finally:
            await host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--in-flight", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(run(args.conversations, args.messages, args.in_flight))
    for key, value in report.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
