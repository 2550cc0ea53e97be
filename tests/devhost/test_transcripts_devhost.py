"""Transcripts end to end through `python -m devhost` (a real subprocess, the real function app with
the outbox relay and the `transcripts` consumer, the embedded store, bus and archive): a
conversation closed through the HTTP API is archived as a file under the data folder, its message
documents then get their retention, and staff read the transcript back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel.catalog import CONTAINERS, CONVERSATIONS
from shared.kernel.clock import SystemClock
from shared.kernel.documents import Query, where
from tests.devhost.test_outbox_relay import SAMPLE, Host, _free_port, configure, escalation, token

BOT = {"Authorization": f"Bearer {token('transcript-bot', 'Bot.Escalate')}"}
AGENT = {"Authorization": f"Bearer {token('agent-0', 'Agent')}"}
SUPERVISOR = {"Authorization": f"Bearer {token('super-1', 'Supervisor')}"}
NOTE = "Internal: call the pharmacy back"


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    host = Host(tmp_path / "data", _free_port())
    yield host
    await host.stop()


async def partition(data_dir: Path, cid: str) -> list[dict[str, Any]]:
    store = SqliteDocumentStore(data_dir / "store.sqlite3", CONTAINERS, SystemClock())
    try:
        page = await store.container(CONVERSATIONS).query(
            Query((where("conversationId", "=", cid),)), partition_key=cid, max_items=1000
        )
        return page.items
    finally:
        await store.close()


async def eventually(check: Any, timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.1)
    return found


async def test_closing_a_conversation_archives_it_and_starts_its_messages_retention(host: Host) -> None:
    await host.start()
    async with httpx.AsyncClient(timeout=30) as client:
        await configure(client, host.api, agents=1)
        answer = await client.post(f"{host.api}/escalations", json=escalation("transcript-1"), headers=BOT)
        assert answer.status_code == 202, answer.text
        cid = answer.json()["conversationId"]

        async def offered() -> bool:
            work = await client.get(f"{host.api}/agents/me/conversations", headers=AGENT)
            return any(c["id"] == cid and c["status"] == "offered" for c in work.json()["items"])

        await eventually(offered)
        url = f"{host.api}/conversations/{cid}"
        assert (await client.post(f"{url}/accept", headers=AGENT)).status_code == 200
        for body in ({"text": "Hello, how can I help?"}, {"text": NOTE, "visibility": "internal"}):
            assert (await client.post(f"{url}/messages", json=body, headers=AGENT)).status_code == 201
        assert (await client.get(f"{url}/transcript", headers=SUPERVISOR)).status_code == 404  # still live
        closed = await client.post(
            f"{host.api}/supervisor/conversations/{cid}/close", json={}, headers=SUPERVISOR
        )
        assert closed.status_code == 200, closed.text

        archive = host.data_dir / "transcripts" / "objects" / f"{cid}.json"

        async def written() -> bool:
            return archive.is_file()

        await eventually(written)

        async def retained() -> list[dict[str, Any]] | None:
            items = await partition(host.data_dir, cid)
            doc = next(i for i in items if i["type"] == "conversation")
            return items if doc.get("archivedAt") else None

        items = await eventually(retained)
        read = await client.get(f"{url}/transcript", headers=SUPERVISOR)

    stored = json.loads(archive.read_bytes())
    assert [m["text"] for m in stored["messages"]] == ["hello", "Hello, how can I help?", NOTE]
    assert stored["conversation"]["history"][-1]["event"] == "force-close"
    messages = [i for i in items if i["type"] == "message"]
    assert len(messages) == 3
    assert {m["ttl"] for m in messages} == {int(SAMPLE["PSC_MESSAGE_RETENTION_DAYS"]) * 24 * 3600}
    assert read.status_code == 200, read.text
    assert read.json() == stored
