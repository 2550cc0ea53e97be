"""The live conversation end to end through `python -m devhost` (a real subprocess: the function
app, the embedded store and bus, the outbox relay, the `realtime` consumer and the embedded hub):
an agent's POST reaches the patient's hub connection; an internal note reaches staff only; the
patient's own message reaches the agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bench.realtime_roundtrip import (
    AGENT,
    PATIENT,
    Connection,
    DevHost,
    auth,
    connect,
    live_conversations,
    ok,
    post_message,
)

NOTE = "Internal: the patient sounded confused, check the dose"


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[DevHost]:
    running = DevHost(tmp_path / "data")
    await running.start()
    yield running
    await running.stop()


async def next_message(connection: Connection, cid: str, seq: int) -> dict[str, object]:
    future = connection.expect(cid, seq)
    for _, data in connection.frames:
        if _is(data, cid, seq):
            return data
    await asyncio.wait_for(future, 10)
    return next(d for _, d in connection.frames if _is(d, cid, seq))


def _is(data: dict[str, object], cid: str, seq: int) -> bool:
    """The message frame of `cid`'s message `seq` (an agent hears every conversation it holds)."""
    message = data.get("message")
    return (
        data.get("kind") == "message"
        and data.get("conversationId") == cid
        and isinstance(message, dict)
        and message.get("seq") == seq
    )


async def test_an_agents_message_reaches_the_patients_hub_connection_and_a_note_only_staff(
    host: DevHost,
) -> None:
    async with httpx.AsyncClient(base_url=host.api, timeout=30) as client:
        (cid,) = await live_conversations(client, 1, prefix="e2e")
        patient = await connect(client, f"/me/conversations/{cid}/negotiate", PATIENT)
        agent = await connect(client, "/agents/me/negotiate", AGENT)
        try:
            hello = await post_message(client, cid, "Hello, this is your nurse.")
            frame = await next_message(patient, cid, hello)
            assert frame["conversationId"] == cid
            assert frame["message"]["text"] == "Hello, this is your nurse."  # type: ignore[index]
            assert frame["message"]["from"]["role"] == "agent"  # type: ignore[index]

            note = await post_message(client, cid, NOTE, "internal")
            after = await post_message(client, cid, "I have booked you for Monday.")
            # A group's frames arrive in send order: the note, had it been sent, would come first.
            assert (await next_message(patient, cid, after))["message"][
                "text"
            ] == "I have booked you for Monday."  # type: ignore[index]
            assert (await next_message(agent, cid, note))["message"]["text"] == NOTE  # type: ignore[index]
            assert [m["message"]["seq"] for m in patient.messages()] == [hello, after]
            assert NOTE not in repr(patient.frames)

            mine = await ok(
                await client.post(
                    f"/me/conversations/{cid}/messages", json={"text": "Thank you!"}, headers=auth(PATIENT)
                )
            )
            assert (await next_message(agent, cid, mine["seq"]))["message"]["text"] == "Thank you!"  # type: ignore[index]
            # Each frame once: the agent heard every message of the conversation exactly once.
            seqs = [m["message"]["seq"] for m in agent.messages()]
            assert seqs == sorted(set(seqs))
            assert NOTE not in "\n".join(host.lines)  # no text in the host's logs
        finally:
            await patient.close()
            await agent.close()
