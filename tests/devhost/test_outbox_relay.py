"""The outbox end to end through `python -m devhost` (a real subprocess, the real function app, the
embedded store and bus; tests/devhost/outbox_host.py adds a `probe` subscription and the crash
hook): state changes made through the HTTP API (an escalation and its routing, a booking) reach a
subscription of the `events` topic once each; and a host killed with SIGKILL under load, after a
batch of events was committed and before it was published, publishes every event once after a
restart."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.auth.dev_tokens import issue_dev_token
from shared.kernel.catalog import AGENTS, APPOINTMENTS, CONTAINERS, CONVERSATIONS, NOTIFICATIONS, QUEUES
from shared.kernel.clock import SystemClock
from shared.kernel.documents import Query, where
from tests.callbacks.bot import RecordingBot
from tests.devhost.host_process import HostProcess
from tests.devhost.outbox_host import PROBE, probe_topics

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
AGGREGATES = (CONVERSATIONS, APPOINTMENTS, AGENTS, NOTIFICATIONS)  # every container with a relay


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def token(sub: str, *roles: str, patient_id: str | None = None) -> str:
    secret = SAMPLE["PSC_DEV_JWT_SECRET"]
    return issue_dev_token(secret, sub=sub, roles=list(roles), patient_id=patient_id, ttl_seconds=3600)


class Host(HostProcess):
    """One dev host process on `data_dir` and `port`; restartable on the same data."""

    async def start(self, *, stall: str = "", demo: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PSC_", "COSMOS", "ServiceBus"))}
        env.update(SAMPLE)
        env["OUTBOX_HOST_STALL"] = stall
        # The demo's patients and providers, without its week of history to relay.
        demo_args = ["--demo", "--no-demo-week"] if demo else []
        await self.spawn("tests.devhost.outbox_host", "--realtime-port", "0", *demo_args, env=env)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    host = Host(tmp_path / "data", _free_port())
    yield host
    await host.stop()


class Probe:
    """The `probe` subscription, read from the bus file as a consumer reads its own: every message
    id received, per session (aggregate) in arrival order."""

    def __init__(self, data_dir: Path) -> None:
        self.bus = SqliteMessageBus(data_dir / "bus.sqlite3", QUEUES, SystemClock(), topics=probe_topics())
        self.sessions: dict[str, list[str]] = defaultdict(list)

    @property
    def ids(self) -> list[str]:
        return [m for ids in self.sessions.values() for m in ids]

    async def drain(self) -> None:
        while (session := await self.bus.accept_next_session(PROBE)) is not None:
            while batch := await self.bus.receive_from_session(session, max_messages=100):
                for message in batch:
                    self.sessions[session.session_id].append(message.message_id)
                    await self.bus.complete(PROBE, message.lock_token)
            await self.bus.release_session(session)

    async def close(self) -> None:
        await self.bus.close()


async def committed_events(data_dir: Path) -> list[str]:
    """The message id of every event document the outbox has committed, in every relayed container."""
    store = SqliteDocumentStore(data_dir / "store.sqlite3", CONTAINERS, SystemClock())
    try:
        ids = []
        for name in AGGREGATES:
            page = await store.container(name).query_cross_partition(
                Query((where("type", "=", "event"),)), max_items=100_000
            )
            ids += [f"{i['aggregateId']}:{i['version']}.{i['n']}" for i in page.items]
        return ids
    finally:
        await store.close()


async def until_published(probe: Probe, data_dir: Path, timeout: float = 60) -> list[str]:
    """Read the probe until it has every committed event and a second later still does (a late
    copy would show by then), and return the committed ids read after the probe's last read: an
    event is committed before it is published, so nothing the probe holds is missing from them."""
    async with asyncio.timeout(timeout):
        while True:
            await probe.drain()
            committed = await committed_events(data_dir)
            if committed and set(committed) <= set(probe.ids):
                await asyncio.sleep(1.0)
                await probe.drain()
                committed = await committed_events(data_dir)
                if set(committed) <= set(probe.ids):
                    return committed
            await asyncio.sleep(0.1)


def in_version_order(ids: list[str]) -> bool:
    keys = [tuple(int(p) for p in re.sub(r"^.*:", "", m).split(".")) for m in ids]
    return keys == sorted(keys)


async def until_called_back(
    bot: RecordingBot, data_dir: Path, conversations: int
) -> dict[str, dict[str, Any]]:
    """Wait until the bot heard every conversation close, the bot-callbacks consumer has nothing
    pending and the bot has seen everything it finished; answer each conversation's state."""
    store = SqliteDocumentStore(data_dir / "store.sqlite3", CONTAINERS, SystemClock())
    states: dict[str, dict[str, Any]] = {}
    finished: set[str] = set()
    seen: set[str] = set()
    try:
        async with asyncio.timeout(90):
            while True:
                page = await store.container(CONVERSATIONS).query_cross_partition(
                    Query((where("type", "=", "callback-state"),)), max_items=1000
                )
                states = {i["conversationId"]: i for i in page.items}
                finished = {w for s in states.values() for w in s["queue"].get("finished", [])}
                seen = {s.headers["webhook-id"] for s in bot.seen}
                settled = all(not s["queue"].get("pending") for s in states.values())
                bodies = [json.loads(s.body) for s in bot.seen]
                closed = {b["data"]["conversationId"] for b in bodies if b["type"] == "conversation.closed"}
                if len(closed) == len(states) == conversations and settled and finished <= seen:
                    return states
                await asyncio.sleep(0.2)
    except TimeoutError:
        pending = {c: [p["type"] for p in s["queue"].get("pending", [])] for c, s in states.items()}
        raise AssertionError(
            f"{len(states)} states; pending { ({c: p for c, p in pending.items() if p}) }; "
            f"finished, never seen: {sorted(finished - seen)}"
        ) from None
    finally:
        await store.close()


async def configure(client: httpx.AsyncClient, api: str, agents: int) -> None:
    admin = {"Authorization": f"Bearer {token('admin-1', 'Administrator')}"}
    queue = {"name": "Relay", "acceptTimeoutSeconds": 3600, "assignmentMethod": "highest-capacity"}
    for url, body in (
        (f"{api}/manage/queues/relay", queue),
        (f"{api}/manage/routing-rules", {"rules": [], "fallbackQueueId": "relay"}),
    ):
        assert (await client.put(url, json=body, headers=admin)).status_code in (200, 201)
    for n in range(agents):
        agent = f"agent-{n}"
        body = {"name": agent, "capacity": 50, "queues": ["relay"], "languages": ["en"]}
        assert (await client.put(f"{api}/manage/agents/{agent}", json=body, headers=admin)).status_code in (
            200,
            201,
        )
        presence = await client.put(
            f"{api}/agents/me/presence",
            json={"status": "available"},
            headers={"Authorization": f"Bearer {token(agent, 'Agent')}"},
        )
        assert presence.status_code == 200, presence.text


def escalation(bot_conversation: str, callback: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "botConversationId": bot_conversation,
        "patient": {"name": "Relay Patient", "language": "en"},
        "reason": "Relay test",
        "triage": {"urgency": "routine"},
        "transcript": [{"from": "patient", "text": "hello", "timestamp": "2026-01-05T09:00:00Z"}],
    }
    if callback is not None:
        body["callback"] = {"url": callback}
    return body


BOT = {"Authorization": f"Bearer {token('relay-bot', 'Bot.Escalate')}"}


async def test_an_escalation_and_a_booking_through_the_api_reach_a_topic_subscription_exactly_once(
    host: Host,
) -> None:
    await host.start(demo=True)
    probe = Probe(host.data_dir)
    patient = {"Authorization": f"Bearer {token('p-demo-2', 'Patient', patient_id='p-demo-2')}"}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await configure(client, host.api, agents=1)
            answer = await client.post(f"{host.api}/escalations", json=escalation("bot-1"), headers=BOT)
            assert answer.status_code == 202, answer.text
            conversation = answer.json()["conversationId"]
            today = datetime.now(UTC).date()
            window = {"from": today.isoformat(), "to": (today + timedelta(days=7)).isoformat()}
            slots = await client.get(f"{host.api}/providers/dr-nowak/slots", params=window, headers=patient)
            assert slots.status_code == 200, slots.text
            start = slots.json()["slots"][0]["start"]
            booking = {"providerId": "dr-nowak", "start": start, "reason": "Check-up"}
            booked = await client.post(f"{host.api}/appointments", json=booking, headers=patient)
            assert booked.status_code == 201, booked.text
            appointment = booked.json()["id"]
            committed = await until_published(probe, host.data_dir)
    finally:
        await probe.close()

    assert sorted(probe.ids) == sorted(committed)  # every event once, nothing else
    assert len(probe.sessions[conversation]) >= 2  # conversation.waiting, then .offered to agent-0
    assert in_version_order(probe.sessions[conversation])
    assert probe.sessions[appointment] == [f"{appointment}:1.1"]  # appointment.booked
    assert probe.sessions["agent-0"], "the agent's presence changes are published too"


@pytest.mark.parametrize("published", [False, True], ids=["before-publication", "before-checkpoint"])
async def test_a_host_killed_after_a_commit_publishes_every_event_once(host: Host, published: bool) -> None:
    """Under load (escalations and the patient's messages through HTTP, routing running), the
    second batch of conversation events stalls after it was read from the change feed and the host
    is SIGKILLed there: before the batch was published (the issue's case), or after it was
    published and before the lease was checkpointed (the next host sends it again). Requests cut
    off by the crash are sent again, as a bot does (same conversation id, same message id). After
    a restart every committed event reaches the probe subscription exactly once, in version order
    per aggregate.

    Each escalation names a recording bot on loopback as its callback, and the bot ends each
    conversation after its messages: after the restart the bot has received every callback the
    consumer made (its state's finished list), in that order per conversation, ending with
    conversation.closed, each signature verified, none given up on."""
    conversations, messages_each = 24, 3
    recording = RecordingBot(secret=SAMPLE["PSC_BOT_CALLBACK_SECRET"])
    callback = f"http://127.0.0.1:{await recording.start()}/psc"
    up = asyncio.Event()

    async def resilient(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> httpx.Response:
        while True:
            await up.wait()
            try:
                return await client.post(url, json=body, headers=BOT)
            except httpx.TransportError:
                await asyncio.sleep(0.05)  # cut off by the crash: the bot sends it again

    async def bot(client: httpx.AsyncClient, n: int) -> None:
        bot_conversation = f"load-{n}"
        answer = await resilient(client, f"{host.api}/escalations", escalation(bot_conversation, callback))
        assert answer.status_code == 202, answer.text
        for k in range(messages_each):
            url = f"{host.api}/bot/conversations/{bot_conversation}/messages"
            answer = await resilient(client, url, {"id": f"m-{n}-{k}", "text": f"message {k}"})
            assert answer.status_code in (200, 201), answer.text
            await asyncio.sleep(0.02)
        ended = await resilient(client, f"{host.api}/bot/conversations/{bot_conversation}/end", {})
        assert ended.status_code == 200, ended.text

    await host.start(stall=f"{CONVERSATIONS}:2" + (":after" if published else ""))
    up.set()
    probe = Probe(host.data_dir)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await configure(client, host.api, agents=3)
            load = asyncio.gather(*(bot(client, n) for n in range(conversations)))
            stalled = await host.wait_for(lambda line: line.startswith("stalled "), 60)
            up.clear()
            assert not load.done(), "the crash lands under load"
            await host.kill()
            stranded = stalled.split()[1:]
            committed = await committed_events(host.data_dir)
            await probe.drain()
            assert set(stranded) <= set(committed), "the stalled events were committed"
            if published:
                assert set(stranded) <= set(probe.ids), "and published, the lease not yet checkpointed"
            else:
                assert not set(stranded) & set(probe.ids), "and not yet published when the host died"

            await host.start()
            up.set()
            await load
            committed = await until_published(probe, host.data_dir)
            states = await until_called_back(recording, host.data_dir, conversations)
    finally:
        await probe.close()
        await recording.close()

    assert len(committed) >= conversations * (2 + messages_each)
    assert len(probe.ids) == len(set(probe.ids)), "an event was delivered twice"
    assert set(probe.ids) == set(committed), "an event was lost (or one was invented)"
    for aggregate, ids in probe.sessions.items():
        assert in_version_order(ids), f"{aggregate}: out of order"

    # The bot received every callback, in order per conversation (at least once: a callback cut
    # off by the crash may come twice with the same webhook-id, which bots dedupe on).
    assert all(not isinstance(seen.verified, Exception) for seen in recording.seen)
    received: dict[str, list[str]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for seen in recording.seen:
        body = json.loads(seen.body)
        webhook_id = seen.headers["webhook-id"]
        kinds[webhook_id] = body["type"]
        if webhook_id not in received[body["data"]["conversationId"]]:
            received[body["data"]["conversationId"]].append(webhook_id)
    assert len(states) == conversations
    for cid, state in states.items():
        assert (state["queue"].get("dead_lettered", 0), state["queue"].get("pending", [])) == (0, [])
        assert received[cid] == state["queue"]["finished"], f"{cid}: a callback missing or out of order"
        assert kinds[received[cid][-1]] == "conversation.closed"
