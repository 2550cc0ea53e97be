"""Transcripts: a closed conversation is archived once, whole, by the `transcripts` consumer of the
`events` topic; its live messages expire only after that; staff who may read it get it back from
`GET /api/conversations/{id}/transcript`, audited. Events go through the embedded topic as the
relay publishes them (`event_message` of each outbox document)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.kernel.archive import Archive
from shared.kernel.clock import ManualClock
from shared.kernel.errors import Unavailable
from shared.kernel.messages import subscription_entity
from shared.kernel.outbox import event_message
from shared.runtime import Runtime, build_runtime, use_runtime
from shared.web.api import ROUTES
from tests.conftest import Answer, invoke, make_settings, registered_functions, stored_items, token
from tests.functions.test_messages import (
    A1,
    NOTE,
    active,
    escalate,
    patient,
    patient_write,
    seed,
    staff_write,
)
from tests.routing.support import SUPERVISOR, agent_token, conversation, deliver, events_of, messages_of

SUBSCRIPTION = subscription_entity("events", "transcripts")
DAY = 24 * 3600
RETENTION = 30 * DAY


async def publish(runtime: Runtime, cid: str) -> None:
    """What the relay does: every outbox event of the conversation onto the topic."""
    for item in await events_of(runtime, cid):
        message = event_message(item)
        assert message is not None
        await runtime.bus.send("events", message)


async def consume(runtime: Runtime) -> list[Any]:
    """Run the transcripts function over the subscription as the host does (complete on success,
    abandon on failure); returns the functions messages it was given."""
    from devhost.queues import to_functions_message

    handler = registered_functions()["archive_transcript"].get_user_function()
    seen = []
    bus: Any = runtime.bus
    while messages := await bus.receive(SUBSCRIPTION, max_messages=10):
        for message in messages:
            seen.append(to_functions_message(message))
            try:
                await handler(seen[-1])
            except Exception:
                await bus.abandon(SUBSCRIPTION, message.lock_token)
                raise
            await bus.complete(SUBSCRIPTION, message.lock_token)
    return seen


async def closed(runtime: Runtime, clock: ManualClock) -> str:
    """A conversation with both sides and an internal note, closed by a-1 after wrap-up."""
    cid = await active(runtime)
    clock.advance(5)
    assert (await staff_write(cid, text="Hello, I am a nurse.")).status == 201
    assert (await staff_write(cid, text=NOTE, visibility="internal", id="note-1")).status == 201
    assert (await patient_write(cid, text="Thanks, it itches.", id="portal-1")).status == 201
    answer = await invoke(
        "close_conversation",
        method="POST",
        bearer=A1,
        route_params={"conversationId": cid},
        json_body={"disposition": "advice given"},
    )
    assert answer.status == 200, answer.json
    clock.advance(31)  # the queue's wrap-up is 30 s
    await deliver(runtime)
    assert (await conversation(runtime, cid))["status"] == "closed"
    return cid


async def transcript(cid: str, bearer: str) -> Answer:
    return await invoke("read_transcript", bearer=bearer, route_params={"conversationId": cid})


async def archived(runtime: Runtime, cid: str) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads(await runtime.transcripts.get(f"{cid}.json"))
    return stored


async def partition(runtime: Runtime, cid: str) -> list[dict[str, Any]]:
    """Everything in the conversation's partition, as stored (ETags included)."""
    items = [
        i for i in await stored_items(runtime, "conversations", children=True) if i["conversationId"] == cid
    ]
    return sorted(items, key=lambda i: i["id"])


# Archiving -----------------------------------------------------------------------------------------


async def test_a_closed_conversation_is_archived_whole_and_only_then_its_messages_expire(
    runtime: Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    cid = await closed(runtime, clock)
    assert all("ttl" not in m for m in await messages_of(runtime, cid))

    await publish(runtime, cid)
    with caplog.at_level(logging.DEBUG):
        seen = await consume(runtime)
    assert "transcript archived" in caplog.text
    assert NOTE not in caplog.text  # the log path carries ids and counts, never a text

    assert [m.subject for m in seen] == ["conversation.closed"]  # the subscription's one subject
    stored = await archived(runtime, cid)
    assert (stored["schemaVersion"], stored["conversationId"]) == (1, cid)
    assert [(m["seq"], m["from"]["role"], m["visibility"]) for m in stored["messages"]] == [
        (1, "bot", "patient"),
        (2, "patient", "patient"),
        (3, "agent", "patient"),
        (4, "agent", "internal"),
        (5, "patient", "patient"),
    ]
    assert stored["messages"][3]["text"] == NOTE
    assert all(m["at"].endswith("Z") for m in stored["messages"])
    history = [entry["event"] for entry in stored["conversation"]["history"]]
    assert history[-4:] == ["offer", "accept", "wrapup", "close"]
    assert stored["conversation"]["status"] == "closed"
    assert stored["conversation"]["closedAt"]

    # Retention starts now, from the archive write: every message and sender's key has its ttl.
    items = await partition(runtime, cid)
    assert {i["ttl"] for i in items if i["type"] in ("message", "message-key")} == {RETENTION}
    doc = await conversation(runtime, cid)
    assert doc["archivedAt"] == "2026-01-05T09:00:36.000Z"
    assert "ttl" not in doc
    # archivedAt is bookkeeping nobody consumes: no event for it.
    assert [e["eventType"] for e in await events_of(runtime, cid)][-1] == "conversation.closed"

    clock.advance(RETENTION - 1)
    assert len(await messages_of(runtime, cid)) == 5
    clock.advance(2)
    assert await messages_of(runtime, cid) == []
    answer = await transcript(cid, SUPERVISOR)
    assert answer.status == 200, answer.json
    assert len(answer.json["messages"]) == 5  # the archive outlives the live messages


async def test_redelivery_of_the_closed_event_changes_nothing(runtime: Runtime, clock: ManualClock) -> None:
    cid = await closed(runtime, clock)
    await publish(runtime, cid)
    (message,) = await consume(runtime)
    before = (await partition(runtime, cid), await stored_items(runtime, "audit"))
    written = await runtime.transcripts.get(f"{cid}.json")

    clock.advance(60)
    handler = registered_functions()["archive_transcript"].get_user_function()
    await handler(message)
    await handler(message)

    assert (await partition(runtime, cid), await stored_items(runtime, "audit")) == before
    assert await runtime.transcripts.get(f"{cid}.json") == written
    assert await runtime.transcripts.list() == [f"{cid}.json"]


class FailingArchive:
    """An archive whose writes fail (the storage account unreachable); reads go through."""

    def __init__(self, inner: Archive) -> None:
        self.inner = inner

    async def put(self, name: str, data: bytes, *args: Any, **kw: Any) -> str:
        raise Unavailable("The archive cannot be reached.")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_failed_archive_write_starts_no_retention_and_the_redelivery_archives(
    runtime: Runtime, clock: ManualClock
) -> None:
    cid = await closed(runtime, clock)
    await publish(runtime, cid)
    working = runtime.transcripts
    runtime.transcripts = FailingArchive(working)  # type: ignore[assignment]

    with pytest.raises(Unavailable):
        await consume(runtime)

    assert all("ttl" not in m for m in await messages_of(runtime, cid))
    assert (await conversation(runtime, cid))["archivedAt"] is None
    assert not [a for a in await stored_items(runtime, "audit") if a["action"] == "export"]
    assert (await transcript(cid, SUPERVISOR)).status == 404

    runtime.transcripts = working
    clock.advance(10)
    (redelivered,) = await consume(runtime)  # the abandoned message comes back

    assert redelivered.delivery_count == 2
    assert {m["ttl"] for m in await messages_of(runtime, cid)} == {RETENTION}
    assert (await conversation(runtime, cid))["archivedAt"] == "2026-01-05T09:00:46.000Z"


async def test_a_delivery_that_died_after_the_archive_write_is_finished_by_the_next(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.conversations.transcripts import Transcripts

    cid = await closed(runtime, clock)
    await publish(runtime, cid)

    async def crash(self: Transcripts, conversation_id: str) -> int:
        raise RuntimeError("worker died")

    with monkeypatch.context() as patched:
        patched.setattr(Transcripts, "_start_retention", crash)
        with pytest.raises(RuntimeError):
            await consume(runtime)
    written = await runtime.transcripts.get(f"{cid}.json")
    assert all("ttl" not in m for m in await messages_of(runtime, cid))

    clock.advance(10)
    await consume(runtime)

    assert await runtime.transcripts.get(f"{cid}.json") == written  # written once: the first
    assert {m["ttl"] for m in await messages_of(runtime, cid)} == {RETENTION}
    assert (await conversation(runtime, cid))["archivedAt"]
    exports = [a for a in await stored_items(runtime, "audit") if a["action"] == "export"]
    assert [(a["actor"], a["resource"], a["patientId"]) for a in exports] == [
        ("system:transcripts", f"transcripts/{cid}.json", "p-1")
    ]


async def test_an_abandoned_conversation_is_archived_with_the_bots_transcript(
    runtime: Runtime, clock: ManualClock
) -> None:
    await seed(runtime)
    cid = str((await escalate()).json["conversationId"])
    answer = await invoke(
        "abandon_conversation", method="POST", bearer=patient(), route_params={"conversationId": cid}
    )
    assert answer.status == 200, answer.json
    await publish(runtime, cid)

    await consume(runtime)

    stored = await archived(runtime, cid)
    assert [(m["from"]["role"], m["text"]) for m in stored["messages"]] == [
        ("bot", "How can I help?"),
        ("patient", "I have a rash"),
    ]
    assert stored["conversation"]["endReason"] == "abandoned"
    assert {m["ttl"] for m in await messages_of(runtime, cid)} == {RETENTION}


async def test_many_long_messages_get_their_retention_in_batches_cosmos_db_takes(
    runtime: Runtime, clock: ManualClock
) -> None:
    """At most 100 operations and 2 MB a batch, however the SDK escapes the text: 230 messages
    of 4,000 non-ASCII characters (24 KB each with every character escaped)."""
    cid = await active(runtime)
    for n in range(230):
        assert (await staff_write(cid, text=f"{n} " + "ż" * 3990, id=f"m-{n}")).status == 201
    forced = await invoke(
        "supervisor_force_close",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": cid},
        json_body={},
    )
    assert forced.status == 200, forced.json
    await publish(runtime, cid)
    batches: list[tuple[int, int]] = []
    batch = runtime.store.container("conversations").batch

    async def counted(partition_key: str, operations: Any) -> Any:
        escaped = sum(len(json.dumps(op.item, separators=(",", ":"))) for op in operations)
        batches.append((len(operations), escaped))
        return await batch(partition_key, operations)

    runtime.store.container("conversations").batch = counted  # type: ignore[method-assign]

    await consume(runtime)

    assert max(n for n, _ in batches) <= 100
    assert max(size for _, size in batches) <= 2 * 1024 * 1024
    assert sum(n for n, _ in batches) == 2 * 230 + 2  # every message and key, and the bot's two messages
    assert len((await archived(runtime, cid))["messages"]) == 232
    items = await partition(runtime, cid)
    assert [i for i in items if i["type"] in ("message", "message-key") and i.get("ttl") != RETENTION] == []


DELIVERIES = 4


def delivery_thread(data_dir: Path, clock: ManualClock, message: Any, errors: list[BaseException]) -> None:
    """One worker with its own runtime (its own SQLite connections) handling the message."""

    async def run() -> None:
        peer = await build_runtime(make_settings(data_dir), clock=clock)
        try:
            with use_runtime(peer):
                await registered_functions()["archive_transcript"].get_user_function()(message)
        finally:
            await peer.close()

    try:
        asyncio.run(run())
    except BaseException as error:  # reported by the test
        errors.append(error)


async def test_deliveries_racing_in_separate_workers_archive_once(
    tmp_path: Path, runtime: Runtime, clock: ManualClock
) -> None:
    """Service Bus may hand a message to a second worker while the first still runs (a lock that
    ran out): write-once, ETag-checked ttl batches and archivedAt keep the effect single."""
    cid = await active(runtime)
    for n in range(150):
        assert (await staff_write(cid, text=f"line {n}", id=f"m-{n}")).status == 201
    forced = await invoke(
        "supervisor_force_close",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": cid},
        json_body={},
    )
    assert forced.status == 200, forced.json
    await publish(runtime, cid)
    bus: Any = runtime.bus
    (received,) = await bus.receive(SUBSCRIPTION, max_messages=10)
    from devhost.queues import to_functions_message

    message = to_functions_message(received)
    version = (await conversation(runtime, cid))["version"]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=delivery_thread, args=(tmp_path / "data", clock, message, errors))
        for _ in range(DELIVERIES)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)

    assert errors == []
    assert await runtime.transcripts.list() == [f"{cid}.json"]
    assert len((await archived(runtime, cid))["messages"]) == 152
    items = await partition(runtime, cid)
    assert {i.get("ttl") for i in items if i["type"] in ("message", "message-key")} == {RETENTION}
    doc = await conversation(runtime, cid)
    assert doc["archivedAt"]
    assert doc["version"] == version + 1  # recorded once
    exports = [a for a in await stored_items(runtime, "audit") if a["action"] == "export"]
    assert len(exports) == 1


# Reading ---------------------------------------------------------------------------------------------


async def test_a_supervisor_and_the_agent_who_handled_it_read_the_transcript_audited(
    runtime: Runtime, clock: ManualClock
) -> None:
    cid = await closed(runtime, clock)
    await publish(runtime, cid)
    await consume(runtime)

    for bearer in (SUPERVISOR, A1):
        answer = await transcript(cid, bearer)
        assert answer.status == 200, answer.json
        assert answer.json["conversationId"] == cid
        assert [m["seq"] for m in answer.json["messages"]] == [1, 2, 3, 4, 5]
        assert answer.json["messages"][3] == {
            "seq": 4,
            "id": "note-1",
            "from": {"role": "agent", "id": "a-1", "name": "a-1"},
            "visibility": "internal",
            "text": NOTE,
            "at": "2026-01-05T09:00:05.000Z",
        }
    reads = [
        a for a in await stored_items(runtime, "audit") if a["resource"] == f"conversations/{cid}/transcript"
    ]
    assert sorted((a["actor"], a["action"], a["patientId"]) for a in reads) == [
        ("a-1", "read", "p-1"),
        ("super-1", "read", "p-1"),
    ]


async def test_nobody_else_reads_a_transcript_and_a_refusal_writes_nothing(
    runtime: Runtime, clock: ManualClock
) -> None:
    cid = await closed(runtime, clock)
    assert (await transcript(cid, SUPERVISOR)).status == 404  # closed, not archived yet
    await publish(runtime, cid)
    await consume(runtime)
    audit = await stored_items(runtime, "audit")

    refusals = {
        "another agent": (cid, agent_token("a-2"), 404),
        "the patient it is about": (cid, patient(), 403),
        "another patient": (cid, patient("p-2"), 403),
        "an administrator": (cid, token("Administrator", sub="admin-1"), 403),
        "the bot": (cid, token("Bot.Escalate", sub="bot-sp-1"), 403),
        "an unknown conversation": ("c-nobody", SUPERVISOR, 404),
    }
    for why, (conversation_id, bearer, status) in refusals.items():
        answer = await transcript(conversation_id, bearer)
        assert answer.status == status, why
        assert answer.headers["Content-Type"] == "application/problem+json", why
        assert NOTE not in answer.body.decode(), why
    assert await stored_items(runtime, "audit") == audit


async def test_a_live_conversation_has_no_transcript(runtime: Runtime) -> None:
    cid = await active(runtime)

    answer = await transcript(cid, A1)

    assert answer.status == 404
    assert "transcript" in answer.json["detail"]


async def test_an_agent_who_handled_it_before_a_transfer_still_reads_it(
    runtime: Runtime, clock: ManualClock
) -> None:
    from tests.routing.support import presence, put_agent

    cid = await active(runtime)
    await put_agent("a-2", queues=["general"], capacity=3)
    await presence("a-2", "available")
    moved = await invoke(
        "transfer_conversation",
        method="POST",
        bearer=A1,
        route_params={"conversationId": cid},
        json_body={"agentId": "a-2"},
    )
    assert moved.status == 200, moved.json
    await deliver(runtime)
    a2 = agent_token("a-2")
    if (await conversation(runtime, cid))["status"] == "offered":
        accepted = await invoke(
            "accept_conversation", method="POST", bearer=a2, route_params={"conversationId": cid}
        )
        assert accepted.status == 200, accepted.json
    forced = await invoke(
        "supervisor_force_close",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": cid},
        json_body={},
    )
    assert forced.status == 200, forced.json
    await publish(runtime, cid)
    await consume(runtime)

    assert (await transcript(cid, A1)).status == 200
    assert (await transcript(cid, a2)).status == 200
    assert (await transcript(cid, agent_token("a-3"))).status == 404


# Internal notes ----------------------------------------------------------------------------------------


async def test_no_patient_path_reads_the_archived_internal_note(runtime: Runtime, clock: ManualClock) -> None:
    cid = await closed(runtime, clock)
    await publish(runtime, cid)
    await consume(runtime)
    assert NOTE.encode() in await runtime.transcripts.get(f"{cid}.json")  # staff's record keeps it

    (route,) = [r for r in ROUTES if r.route.endswith("/transcript")]
    assert route.access.roles == {"Supervisor", "Agent"}  # never Patient, never the bot
    assert route.access.patient_param is None
    answer = await transcript(cid, patient())
    assert answer.status == 403
    for name in ("my_messages", "my_conversation"):
        answer = await invoke(name, bearer=patient(), route_params={"conversationId": cid})
        assert answer.status == 200, (name, answer.json)
        assert NOTE not in answer.body.decode(), name
