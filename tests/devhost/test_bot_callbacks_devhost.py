"""Bot callbacks end to end through `python -m devhost` (a real subprocess: the function app, the
embedded store and bus, the outbox relay, the `callbacks` consumer) with a recording bot endpoint
on loopback that verifies every Standard Webhooks signature with the reference library: an
escalation naming the endpoint, an agent who accepts, writes to the patient, writes an internal
note and closes; the bot hears queue.position → agent.joined → message → conversation.closed, in
that order, each once, and never the note."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.callbacks.bot import RecordingBot
from tests.devhost.test_outbox_relay import SAMPLE, Host, _free_port, token

NOTE = "Internal: do not tell the patient about the waiting list"
ADMIN = {"Authorization": f"Bearer {token('admin-1', 'Administrator')}"}
AGENT = {"Authorization": f"Bearer {token('agent-cb', 'Agent')}"}
SUPERVISOR = {"Authorization": f"Bearer {token('sup-1', 'Supervisor')}"}
BOT = {"Authorization": f"Bearer {token('callback-bot', 'Bot.Escalate')}"}


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    host = Host(tmp_path / "data", _free_port())
    yield host
    await host.stop()


@pytest.fixture
async def bot() -> AsyncIterator[RecordingBot]:
    recording = RecordingBot(secret=SAMPLE["PSC_BOT_CALLBACK_SECRET"])
    yield recording
    await recording.close()


async def until(seen: RecordingBot, count: int, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while len(seen.seen) < count:
            await asyncio.sleep(0.05)


def kinds(bot: RecordingBot) -> list[str]:
    return [json.loads(s.body)["type"] for s in bot.seen]


async def ok(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else {}


async def test_the_bot_hears_its_conversation_in_order_and_never_an_internal_note(
    host: Host, bot: RecordingBot
) -> None:
    port = await bot.start()
    await host.start()
    api = host.api
    async with httpx.AsyncClient(timeout=30) as client:
        queue = {"name": "Callbacks", "acceptTimeoutSeconds": 3600, "wrapupSeconds": 0}
        await ok(await client.put(f"{api}/manage/queues/cb", json=queue, headers=ADMIN))
        await ok(
            await client.put(
                f"{api}/manage/routing-rules", json={"rules": [], "fallbackQueueId": "cb"}, headers=ADMIN
            )
        )
        agent = {"name": "Nurse Joy", "capacity": 2, "queues": ["cb"], "languages": ["en"]}
        await ok(await client.put(f"{api}/manage/agents/agent-cb", json=agent, headers=ADMIN))

        escalation = {
            "botConversationId": "bot-conv-cb",
            "patient": {"name": "Callback Patient", "language": "en"},
            "reason": "Rash",
            "triage": {"urgency": "routine"},
            "transcript": [{"from": "patient", "text": "hello", "timestamp": "2026-01-05T09:00:00Z"}],
            "callback": {"url": f"http://127.0.0.1:{port}/psc/callbacks?token=t0ken"},
        }
        answer = await ok(await client.post(f"{api}/escalations", json=escalation, headers=BOT))
        cid = answer["conversationId"]
        await until(bot, 1)  # nobody available: its place in the queue

        await ok(await client.put(f"{api}/agents/me/presence", json={"status": "available"}, headers=AGENT))
        async with asyncio.timeout(30):
            while (await ok(await client.get(f"{api}/conversations/{cid}", headers=SUPERVISOR)))[
                "status"
            ] != "offered":
                await asyncio.sleep(0.05)
        await ok(await client.post(f"{api}/conversations/{cid}/accept", headers=AGENT))
        to_patient = {"text": "Hello, I am Nurse Joy."}
        await ok(await client.post(f"{api}/conversations/{cid}/messages", json=to_patient, headers=AGENT))
        note = {"text": NOTE, "visibility": "internal"}
        await ok(await client.post(f"{api}/conversations/{cid}/messages", json=note, headers=AGENT))
        await ok(await client.post(f"{api}/conversations/{cid}/close", json={}, headers=AGENT))
        await until(bot, 4)
        await asyncio.sleep(1.5)  # a late or repeated callback would show

    assert kinds(bot) == ["queue.position", "agent.joined", "message", "conversation.closed"]
    for seen in bot.seen:
        assert not isinstance(seen.verified, Exception), seen.verified  # signature, id, timestamp
        assert seen.path == "/psc/callbacks?token=t0ken"
        assert "." not in seen.headers["webhook-id"]
    bodies = [json.loads(s.body) for s in bot.seen]
    ids = {"conversationId": cid, "botConversationId": "bot-conv-cb"}
    assert bodies[0]["data"] == {**ids, "position": 1, "estimatedWaitSeconds": None, "outOfHours": False}
    assert bodies[1]["data"] == {**ids, "agent": {"name": "Nurse Joy"}}
    assert bodies[2]["data"]["text"] == "Hello, I am Nurse Joy."
    assert bodies[3]["data"] == {**ids, "endReason": "completed"}
    assert NOTE not in "".join(s.body.decode() for s in bot.seen)
    assert len({s.headers["webhook-id"] for s in bot.seen}) == 4
