"""Messages (PRODUCT.md *Messages*) through the registered functions, on the embedded store: who may
read and write what, seq without gaps, the sender's id stored once, the bot relaying the patient and
their leaving, a next conversation after a closed one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.counting import CountingStore, summary
from shared.conversations.lifecycle import Lifecycle
from shared.kernel.clock import ManualClock
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import Answer, invoke, make_settings, stored_items, token
from tests.routing.support import (
    SUPERVISOR,
    agent_token,
    conversation,
    deliver,
    events_of,
    messages_of,
    presence,
    put_agent,
    put_queue,
    put_rules,
)
from tests.workspace.support import deliver_patient_lists

BOT = token("Bot.Escalate", sub="bot-sp-1")
OTHER_BOT = token("Bot.Escalate", sub="bot-sp-2")
A1 = agent_token("a-1")
NOTE = "Internal: check the allergy list before booking"
ESCALATION: dict[str, Any] = {
    "botConversationId": "chat/42",
    "patient": {"id": "p-1"},
    "reason": "Rash",
    "triage": {"urgency": "routine"},
    "transcript": [
        {"from": "bot", "text": "How can I help?", "timestamp": "2026-01-05T08:58:00Z"},
        {"from": "patient", "text": "I have a rash", "timestamp": "2026-01-05T08:59:00Z"},
    ],
}
BOT_PATH = {"botConversationId": "chat/42"}


def patient(patient_id: str = "p-1") -> str:
    return token("Patient", sub=f"sub-{patient_id}", patient_id=patient_id)


async def seed(runtime: Runtime) -> None:
    await runtime.store.container("patients").upsert({"id": "p-1", "type": "patient", "name": "Ann"})
    await runtime.store.container("patients").upsert({"id": "p-2", "type": "patient", "name": "Bob"})
    await put_queue("general", acceptTimeoutSeconds=600, wrapupSeconds=30)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=3)
    await presence("a-1", "available")


async def escalate(body: dict[str, Any] | None = None, bearer: str = BOT) -> Answer:
    answer = await invoke("escalate", method="POST", bearer=bearer, json_body=body or ESCALATION)
    assert answer.status in (200, 202), answer.json
    return answer


async def active(runtime: Runtime) -> str:
    """An escalated conversation, accepted by a-1."""
    await seed(runtime)
    cid = str((await escalate()).json["conversationId"])
    await deliver(runtime)
    accepted = await invoke(
        "accept_conversation", method="POST", bearer=A1, route_params={"conversationId": cid}
    )
    assert accepted.status == 200, accepted.json
    return cid


async def staff_write(cid: str, bearer: str = A1, **body: Any) -> Answer:
    return await invoke(
        "send_message", method="POST", bearer=bearer, route_params={"conversationId": cid}, json_body=body
    )


async def patient_write(cid: str, bearer: str | None = None, **body: Any) -> Answer:
    return await invoke(
        "send_my_message",
        method="POST",
        bearer=bearer or patient(),
        route_params={"conversationId": cid},
        json_body=body,
    )


async def bot_write(bearer: str = BOT, path: dict[str, str] = BOT_PATH, **body: Any) -> Answer:
    return await invoke("bot_message", method="POST", bearer=bearer, route_params=path, json_body=body)


async def read(name: str, cid: str, bearer: str, **params: Any) -> Answer:
    return await invoke(
        name,
        bearer=bearer,
        route_params={"conversationId": cid},
        params={k: str(v) for k, v in params.items()},
    )


# The conversation from both sides -----------------------------------------------------------------


async def test_staff_and_patient_talk_and_the_patient_never_sees_an_internal_note(
    runtime: Runtime, clock: ManualClock
) -> None:
    cid = await active(runtime)
    clock.advance(10)
    hello = await staff_write(cid, text="Hello, I am a nurse.")
    assert hello.status == 201, hello.json
    assert hello.json == {
        "seq": 3,
        "id": "msg:0000000003",
        "from": {"role": "agent", "id": "a-1", "name": "a-1"},  # the token's name
        "visibility": "patient",
        "text": "Hello, I am a nurse.",
        "at": "2026-01-05T09:00:10.000Z",
    }
    note = await staff_write(cid, text=NOTE, visibility="internal", id="note-1")
    assert (note.status, note.json.get("seq"), note.json.get("id")) == (201, 4, "note-1"), note.json
    answer = await patient_write(cid, text="Thanks, it itches.", id="portal-1")
    assert answer.status == 201
    assert (answer.json["seq"], answer.json["from"]) == (5, {"role": "patient", "id": "p-1"})

    theirs = await read("my_messages", cid, patient())
    assert [m["seq"] for m in theirs.json["items"]] == [1, 2, 3, 5]
    assert NOTE not in json.dumps(theirs.json)
    ours = await read("read_messages", cid, A1)
    assert [m["seq"] for m in ours.json["items"]] == [1, 2, 3, 4, 5]
    assert ours.json["items"][3]["visibility"] == "internal"
    view = await read("my_conversation", cid, patient())
    assert (view.json["status"], view.json["lastSeq"]) == ("active", 5)
    assert "summary" not in view.json
    assert "reason" not in view.json

    # Each write is one event with ids and counts, never the text; the first reply to the patient
    # is the first agent response (the internal note is not).
    messages = [e for e in await events_of(runtime, cid) if e["eventType"] == "conversation.message"]
    assert [(e["data"]["seq"], e["data"]["visibility"], e["data"]["from"]["role"]) for e in messages] == [
        (3, "patient", "agent"),
        (4, "internal", "agent"),
        (5, "patient", "patient"),
    ]
    assert [e["data"]["firstAgentResponse"] for e in messages] == [True, False, False]
    assert messages[0]["data"]["responseSeconds"] == 10.0
    assert "nurse" not in json.dumps(messages)
    assert NOTE not in json.dumps(messages)


async def test_pages_follow_after_and_max_items(runtime: Runtime) -> None:
    cid = await active(runtime)
    for n in range(5):
        assert (await staff_write(cid, text=f"m{n}")).status == 201
    first = await read("read_messages", cid, A1, maxItems=3)
    assert ([m["seq"] for m in first.json["items"]], first.json["next"]) == ([1, 2, 3], 3)
    second = await read("read_messages", cid, A1, after=3, maxItems=3)
    assert ([m["seq"] for m in second.json["items"]], second.json["next"]) == ([4, 5, 6], 6)
    last = await read("read_messages", cid, A1, after=6, maxItems=3)
    assert ([m["seq"] for m in last.json["items"]], last.json["next"]) == ([7], None)
    assert (await read("read_messages", cid, A1, after=7)).json == {"items": [], "next": None}


async def test_the_same_senders_id_twice_is_stored_once_and_answers_the_first(runtime: Runtime) -> None:
    cid = await active(runtime)
    first = await staff_write(cid, text="Booked you for Monday.", id="console-7")
    again = await staff_write(cid, text="Booked you for Monday!", id="console-7")
    assert (first.status, again.status) == (201, 200)
    assert again.json == first.json
    # Another sender's id is theirs: the patient's "console-7" is a message of its own.
    assert (await patient_write(cid, text="ok", id="console-7")).status == 201
    assert [m["seq"] for m in await messages_of(runtime, cid)] == [1, 2, 3, 4]


async def test_the_patients_view_of_a_conversation_carries_its_etag(runtime: Runtime) -> None:
    cid = await active(runtime)
    mine = await read("my_conversation", cid, patient())
    staff = await read("get_conversation", cid, A1)
    assert mine.status == 200
    assert re.match(r'^"[\x21\x23-\x7e]+"$', mine.headers["ETag"])
    assert mine.headers["ETag"] == staff.headers["ETag"]  # one conversation, one version
    assert (await staff_write(cid, text="Hello")).status == 201
    assert (await read("my_conversation", cid, patient())).headers["ETag"] != mine.headers["ETag"]


async def test_a_staff_read_of_the_conversation_carries_its_transcript(runtime: Runtime) -> None:
    cid = await active(runtime)
    assert (await staff_write(cid, text=NOTE, visibility="internal")).status == 201
    assert (await patient_write(cid, text="Thanks, it itches.")).status == 201
    view = await read("get_conversation", cid, A1)
    assert view.status == 200, view.json
    transcript = view.json["transcript"]
    assert [(m["seq"], m["from"]["role"], m["visibility"]) for m in transcript["items"]] == [
        (1, "bot", "patient"),
        (2, "patient", "patient"),
        (3, "agent", "internal"),
        (4, "patient", "patient"),
    ]
    assert transcript["items"][0]["text"] == "How can I help?"
    assert transcript == (await read("read_messages", cid, A1)).json  # as `…/messages` answers
    assert transcript["next"] is None
    assert (await read("get_conversation", cid, SUPERVISOR)).json["transcript"] == transcript

    # Past the first page, `next` says where `…/messages` goes on.
    for n in range(48):
        assert (await staff_write(cid, text=f"m{n}")).status == 201
    long = (await read("get_conversation", cid, A1)).json["transcript"]
    assert ([m["seq"] for m in long["items"]], long["next"]) == (list(range(1, 51)), 50)
    rest = await read("read_messages", cid, A1, after=long["next"])
    assert [m["seq"] for m in rest.json["items"]] == [51, 52]


async def test_a_staff_read_of_the_conversation_costs_a_read_a_query_and_its_audit(runtime: Runtime) -> None:
    cid = await active(runtime)
    counting = CountingStore(runtime.store)
    with use_runtime(dataclasses.replace(runtime, store=counting)):
        counting.take()
        assert (await read("get_conversation", cid, A1)).status == 200
        counts = counting.take()
    assert summary(counts) == {"point": 2, "query.in-partition": 1, "query.cross-partition": 0, "batch": 0}
    assert counts["conversations:point.read"] == 1
    assert counts["audit:point.create"] == 1


# Who may ---------------------------------------------------------------------------------------


async def test_another_patients_conversation_answers_404_and_nothing_is_written(runtime: Runtime) -> None:
    cid = await active(runtime)
    other = patient("p-2")
    assert (await read("my_conversation", cid, other)).status == 404
    assert (await read("my_messages", cid, other)).status == 404
    assert (await patient_write(cid, bearer=other, text="hi")).status == 404
    assert (await read("my_messages", "c-nope", patient())).status == 404
    assert [m["seq"] for m in await messages_of(runtime, cid)] == [1, 2]


async def test_roles_each_route_refuses(runtime: Runtime) -> None:
    cid = await active(runtime)
    assert (await staff_write(cid, bearer=patient(), text="x")).status == 403
    assert (await read("read_messages", cid, patient())).status == 403
    assert (await patient_write(cid, bearer=A1, text="x")).status == 403
    assert (await bot_write(bearer=A1, text="x", id="m-1")).status == 403
    assert (await staff_write(cid, bearer=agent_token("a-2"), text="x")).status == 404  # not theirs
    assert (await read("read_messages", cid, agent_token("a-2"))).status == 404
    assert (await staff_write(cid, bearer=SUPERVISOR, text="Supervisor here")).status == 201
    assert [m["seq"] for m in await messages_of(runtime, cid)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("staff", {"text": ""}),
        ("staff", {"text": "x" * 4001}),
        ("staff", {"text": "hi", "visibility": "secret"}),
        ("staff", {"text": "bad\u202eorder"}),
        ("patient", {"text": "hi", "visibility": "internal"}),  # patients have no internal notes
        ("bot", {"text": "hi"}),  # the bot's own id is required
        ("bot", {"text": "hi", "id": ""}),
    ],
)
async def test_bad_bodies_are_400_and_write_nothing(
    runtime: Runtime, route: str, body: dict[str, Any]
) -> None:
    cid = await active(runtime)
    events = len(await events_of(runtime, cid))
    write = {"staff": staff_write, "patient": patient_write}.get(route)
    answer = await write(cid, **body) if write else await bot_write(**body)
    assert answer.status == 400, answer.json
    assert [m["seq"] for m in await messages_of(runtime, cid)] == [1, 2]
    assert len(await events_of(runtime, cid)) == events


async def test_an_agent_writes_only_once_they_accepted(runtime: Runtime) -> None:
    await seed(runtime)
    cid = (await escalate()).json["conversationId"]
    await deliver(runtime)  # offered to a-1, not accepted
    assert (await staff_write(cid, text="hi")).status == 409
    assert (await patient_write(cid, text="anyone there?")).status == 201  # the patient may, waiting


async def test_nobody_writes_to_a_closed_conversation_but_a_retry_gets_its_first_answer(
    runtime: Runtime, clock: ManualClock
) -> None:
    cid = await active(runtime)
    sent = await bot_write(text="One more thing", id="bot-msg-1")
    assert sent.status == 201
    closed = await invoke(
        "supervisor_force_close",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": cid},
        json_body={},
    )
    assert closed.status == 200
    assert (await staff_write(cid, text="x")).status == 409
    assert (await staff_write(cid, bearer=SUPERVISOR, text="x")).status == 409
    assert (await patient_write(cid, text="x")).status == 409
    assert (await bot_write(text="x", id="bot-msg-2")).status == 409
    replay = await bot_write(text="One more thing", id="bot-msg-1")
    assert (replay.status, replay.json) == (200, sent.json)


# The patient's list of conversations -------------------------------------------------------------


async def my_list(bearer: str | None = None, **params: Any) -> Answer:
    return await invoke(
        "list_my_conversations", bearer=bearer or patient(), params={k: str(v) for k, v in params.items()}
    )


async def three_and_one(runtime: Runtime, clock: ManualClock) -> list[str]:
    """p-1's three conversations (oldest first, a minute apart) and p-2's one, listed by the
    `patient-conversations` consumer. Returns p-1's ids."""
    await seed(runtime)
    ids = []
    for n in range(3):
        body = {**ESCALATION, "botConversationId": f"chat/p1-{n}"}
        ids.append(str((await escalate(body)).json["conversationId"]))
        clock.advance(60)
    await escalate({**ESCALATION, "botConversationId": "chat/p2", "patient": {"id": "p-2"}})
    assert await deliver_patient_lists(runtime) == 4
    return ids


async def test_a_patient_pages_through_their_own_conversations_newest_first(
    runtime: Runtime, clock: ManualClock
) -> None:
    oldest, middle, newest = await three_and_one(runtime, clock)
    first = await my_list(maxItems=2)
    assert first.status == 200, first.json
    assert [c["id"] for c in first.json["items"]] == [newest, middle]
    # Each as `GET /api/me/conversations/{id}` shows it: never staff's summary or reason.
    one = await read("my_conversation", newest, patient())
    assert first.json["items"][0] == one.json
    assert "summary" not in json.dumps(first.json)
    assert "reason" not in json.dumps(first.json)
    rest = await my_list(maxItems=2, continuationToken=first.json["continuationToken"])
    assert ([c["id"] for c in rest.json["items"]], "continuationToken" in rest.json) == ([oldest], False)
    listed = [a for a in await stored_items(runtime, "audit") if a.get("action") == "list"]
    assert {(a["resource"], a["patientId"]) for a in listed} == {("me/conversations", "p-1")}

    # The other patient sees only theirs; one without any sees an empty list.
    (theirs,) = (await my_list(patient("p-2"))).json["items"]
    assert theirs["id"] not in (oldest, middle, newest)
    assert (await my_list(patient("p-3"))).json == {"items": []}


async def test_another_patients_conversation_is_never_listed_even_with_a_stale_entry(
    runtime: Runtime, clock: ManualClock
) -> None:
    from shared.kernel.lists import add, entry

    oldest, _, newest = await three_and_one(runtime, clock)
    # An entry on p-2's list naming p-1's conversation (as a merge leaves until it unlists): the
    # reader re-reads the conversation and skips it.
    await add(runtime.store, entry("patient-conversations:p-2", newest, "9999|" + newest))
    items = (await my_list(patient("p-2"), maxItems=1)).json
    seen = [c["id"] for c in items["items"]]
    while "continuationToken" in items:
        items = (await my_list(patient("p-2"), continuationToken=items["continuationToken"])).json
        seen += [c["id"] for c in items["items"]]
    assert len(seen) == 1
    assert seen[0] not in (oldest, newest)


@pytest.mark.parametrize(
    "params",
    [
        {"maxItems": 0},
        {"maxItems": 101},
        {"maxItems": "many"},
        {"continuationToken": "not-a-token"},
        {"continuationToken": ""},
        {"status": "active"},  # no such filter
    ],
)
async def test_bad_list_requests_are_400_and_write_nothing(
    runtime: Runtime, clock: ManualClock, params: dict[str, Any]
) -> None:
    await three_and_one(runtime, clock)
    audit = len(await stored_items(runtime, "audit"))
    answer = await my_list(**params)
    assert answer.status == 400, answer.json
    assert len(await stored_items(runtime, "audit")) == audit


async def test_a_list_token_fits_only_the_patient_it_was_handed_to(
    runtime: Runtime, clock: ManualClock
) -> None:
    await three_and_one(runtime, clock)
    token_of_p1 = (await my_list(maxItems=1)).json["continuationToken"]
    assert (await my_list(patient("p-2"), continuationToken=token_of_p1)).status == 400


async def test_only_patients_list_their_conversations(runtime: Runtime, clock: ManualClock) -> None:
    await three_and_one(runtime, clock)
    assert (await my_list(A1)).status == 403
    assert (await my_list(SUPERVISOR)).status == 403
    assert (await my_list(BOT)).status == 403
    assert (await my_list(token("Patient", sub="sub-x"))).status == 403  # no patient_id claim
    assert (await invoke("list_my_conversations")).status == 401


async def test_the_list_costs_one_list_query_a_read_per_conversation_and_its_audit(
    runtime: Runtime, clock: ManualClock
) -> None:
    await three_and_one(runtime, clock)
    counting = CountingStore(runtime.store)
    with use_runtime(dataclasses.replace(runtime, store=counting)):
        counting.take()
        assert len((await my_list()).json["items"]) == 3
        counts = counting.take()
    assert summary(counts) == {"point": 4, "query.in-partition": 1, "query.cross-partition": 0, "batch": 0}
    assert counts["lists:query.in-partition"] == 1
    assert counts["conversations:point.read"] == 3


# The bot ---------------------------------------------------------------------------------------


async def test_the_bot_relays_the_patients_messages_to_its_conversation_only(runtime: Runtime) -> None:
    cid = await active(runtime)
    relayed = await bot_write(text="It spreads", id="bf-activity-9")
    assert relayed.status == 201
    assert (relayed.json["from"], relayed.json["id"], relayed.json["seq"]) == (
        {"role": "patient", "id": "p-1"},
        "bf-activity-9",
        3,
    )
    assert (await bot_write(text="It spreads", id="bf-activity-9")).json == relayed.json
    # Another bot's conversation of the same name is none of this one.
    assert (await bot_write(bearer=OTHER_BOT, text="x", id="m-1")).status == 404
    assert (await bot_write(path={"botConversationId": "chat/43"}, text="x", id="m-1")).status == 404
    assert [m["seq"] for m in await messages_of(runtime, cid)] == [1, 2, 3]


async def test_the_patient_leaving_abandons_a_waiting_one_and_wraps_up_an_active_one(
    runtime: Runtime, clock: ManualClock
) -> None:
    await seed(runtime)
    await presence("a-1", "offline")
    waiting = (await escalate()).json["conversationId"]
    await deliver(runtime)
    left = await invoke("bot_end", method="POST", bearer=BOT, route_params=BOT_PATH)
    assert left.json == {"conversationId": waiting, "status": "closed", "endReason": "abandoned"}
    again = await invoke("bot_end", method="POST", bearer=BOT, route_params=BOT_PATH)
    assert (again.status, again.json) == (200, left.json)

    # Escalated again: the closed conversation stays closed, a new one follows it.
    await presence("a-1", "available")
    second = await escalate()
    assert second.status == 202
    cid = second.json["conversationId"]
    assert cid != waiting
    doc = await conversation(runtime, cid)
    assert (doc["previousConversationId"], doc["generation"]) == (waiting, 2)
    await deliver(runtime)
    assert (
        await invoke("accept_conversation", method="POST", bearer=A1, route_params={"conversationId": cid})
    ).status == 200
    # The bot now reaches the new one.
    assert (await bot_write(text="still here", id="m-2")).json["seq"] == 3
    clock.advance(5)
    ended = await invoke("bot_end", method="POST", bearer=BOT, route_params=BOT_PATH)
    assert ended.json == {"conversationId": cid, "status": "wrapup", "endReason": "patient-left"}
    clock.advance(31)
    await deliver(runtime)
    closed = await conversation(runtime, cid)
    assert (closed["status"], closed["endReason"]) == ("closed", "patient-left")
    closing = [e for e in await events_of(runtime, cid) if e["eventType"] == "conversation.closed"]
    assert (closing[0]["data"]["handled"], closing[0]["data"]["endReason"]) == (True, "patient-left")
    # The same escalation once more while the new one is live answers it; after it closed, a third.
    third = await escalate()
    assert third.status == 202
    assert (await conversation(runtime, third.json["conversationId"]))["previousConversationId"] == cid


async def test_the_patient_leaving_while_an_agent_accepts_is_looked_at_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot read the conversation as offered, the agent accepted before its write: the lost
    race (Conflict) goes round the one retry policy, which reads it again as active."""
    await seed(runtime)
    cid = (await escalate()).json["conversationId"]
    await deliver(runtime)
    real = Lifecycle.abandon
    calls: list[str] = []

    async def accepted_meanwhile(
        self: Lifecycle, principal: Any, conversation_id: str, correlation: Any
    ) -> Any:
        calls.append(conversation_id)
        accepted = await invoke(
            "accept_conversation", method="POST", bearer=A1, route_params={"conversationId": conversation_id}
        )
        assert accepted.status == 200, accepted.json
        return await real(self, principal, conversation_id, correlation)

    monkeypatch.setattr(Lifecycle, "abandon", accepted_meanwhile)
    ended = await invoke("bot_end", method="POST", bearer=BOT, route_params=BOT_PATH)
    assert (ended.status, ended.json) == (
        200,
        {"conversationId": cid, "status": "wrapup", "endReason": "patient-left"},
    )
    assert calls == [cid]


async def test_concurrent_escalations_after_a_closed_conversation_open_one_next(runtime: Runtime) -> None:
    await seed(runtime)
    first = (await escalate()).json["conversationId"]
    await invoke("bot_end", method="POST", bearer=BOT, route_params=BOT_PATH)
    answers = await asyncio.gather(*(escalate() for _ in range(4)))
    assert sorted(a.status for a in answers) == [200, 200, 200, 202]
    (nxt,) = {a.json["conversationId"] for a in answers}
    assert nxt != first
    conversations = await stored_items(runtime, "conversations")
    assert sorted(c["generation"] for c in conversations) == [1, 2]


# Concurrency -----------------------------------------------------------------------------------

WRITERS = 4
EACH = 15


def writer_thread(data_dir: Path, clock: ManualClock, cid: str, n: int, errors: list[BaseException]) -> None:
    async def run() -> None:
        peer = await build_runtime(make_settings(data_dir), clock=clock)
        try:
            with use_runtime(peer):
                for i in range(EACH):
                    for _ in range(50):  # a 409 "busy" is retried with the same id, as a client would
                        answer = await staff_write(cid, bearer=SUPERVISOR, text=f"w{n}-{i}", id=f"w{n}-{i}")
                        if answer.status in (200, 201):
                            break
                        assert answer.status == 409, answer.json
                    else:
                        raise AssertionError("never written")
        finally:
            await peer.close()

    try:
        asyncio.run(run())
    except BaseException as error:  # reported by the test
        errors.append(error)


async def test_concurrent_writers_get_seq_without_gaps_or_duplicates(
    tmp_path: Path, runtime: Runtime
) -> None:
    cid = await active(runtime)
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=writer_thread, args=(tmp_path / "data", clock, cid, n, errors))
        for n in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert errors == []
    messages = await messages_of(runtime, cid)
    total = 2 + WRITERS * EACH
    assert [m["seq"] for m in messages] == list(range(1, total + 1))
    assert sorted(m["clientId"] for m in messages[2:]) == sorted(
        f"w{n}-{i}" for n in range(WRITERS) for i in range(EACH)
    )
    assert (await conversation(runtime, cid))["lastSeq"] == total
    written = [
        e["data"]["seq"] for e in await events_of(runtime, cid) if e["eventType"] == "conversation.message"
    ]
    assert written == list(range(3, total + 1))
