"""The bot-callbacks consumer on the embedded store and bus: a conversation's events, published to
the `events` topic as the relay publishes them, reach the bot as callbacks, in order, at least
once, through the registered `bot_callbacks` function (a session trigger)."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import pairwise

import pytest

from shared.callbacks.api import dead_letters
from shared.callbacks.schedule import MIN_ATTEMPTS, RETRY_WINDOW
from shared.kernel.catalog import EVENTS_TOPIC
from shared.kernel.clock import ManualClock
from shared.kernel.messages import ReceivedMessage
from shared.kernel.outbox import event_message
from shared.runtime import Runtime
from tests.callbacks.consumer_support import (
    CALLBACK_URL,
    NOTE,
    ScriptedSender,
    act,
    allow_callbacks,
    callbacks_function,
    escalate,
    escalation,
    publish,
    run_callbacks,
    seed,
    state_of,
    through_routing,
)
from tests.routing.support import events_of, functions_message, presence


@pytest.fixture
def sender(runtime: Runtime, clock: ManualClock) -> ScriptedSender:
    allow_callbacks(runtime)
    scripted = ScriptedSender(clock)
    runtime.callback_sender = scripted
    return scripted


async def a_whole_conversation(runtime: Runtime, clock: ManualClock) -> str:
    """Escalated with a callback, accepted by a-1, an agent message, an internal note, the
    patient's own message, closed by the agent and out of wrap-up; the relay and the consumer run
    after each step, as they do live."""
    await seed(runtime, agent_available=False)
    cid = await escalate(escalation())
    await through_routing(runtime)

    async def pump() -> None:
        await publish(runtime, cid)
        await run_callbacks(runtime)

    await pump()
    await presence("a-1", "available")
    await through_routing(runtime)
    await act("accept_conversation", cid)
    await pump()
    clock.advance(5)
    await act("send_message", cid, text="Hello, I am Nurse Joy.")
    await act("send_message", cid, text=NOTE, visibility="internal")
    await act("send_my_message", cid, bearer=_patient(), text="Thanks, it itches.")
    await pump()
    await act("close_conversation", cid)
    clock.advance(31)
    await through_routing(runtime)
    await pump()
    return cid


def _patient() -> str:
    from tests.conftest import token

    return token("Patient", sub="sub-p-1", patient_id="p-1")


async def test_the_bot_hears_its_place_the_agent_the_agents_message_and_the_close_in_order(
    runtime: Runtime, clock: ManualClock, sender: ScriptedSender
) -> None:
    cid = await a_whole_conversation(runtime, clock)
    await publish(runtime, cid)
    await run_callbacks(runtime)

    assert sender.delivered_types == ["queue.position", "agent.joined", "message", "conversation.closed"]
    position, joined, message, closed = (a.data for a in sender.attempts)
    ids = {"conversationId": cid, "botConversationId": "chat-cb-1"}
    assert position == {**ids, "position": 1, "estimatedWaitSeconds": None, "outOfHours": False}
    assert joined == {**ids, "agent": {"name": "Nurse Joy"}}
    assert message == {
        **ids,
        "seq": 2,
        "text": "Hello, I am Nurse Joy.",
        "from": {"role": "agent", "name": "a-1"},
    }
    assert closed == {**ids, "endReason": "completed"}
    assert {a.url for a in sender.attempts} == {CALLBACK_URL}
    # webhook-id: the event id, dot-free; each once.
    assert all("." not in a.id for a in sender.attempts)
    assert len({a.id for a in sender.attempts}) == 4
    events = {e["eventType"]: e for e in await events_of(runtime, cid)}
    accepted = events["conversation.accepted"]
    assert sender.attempts[1].id == f"{cid}:{accepted['version']}-{accepted['n']}"


async def test_an_internal_note_never_becomes_a_callback(
    runtime: Runtime, clock: ManualClock, sender: ScriptedSender
) -> None:
    cid = await a_whole_conversation(runtime, clock)
    await publish(runtime, cid)
    await run_callbacks(runtime)
    sent = json.dumps([a.data for a in sender.attempts])
    assert NOTE not in sent
    assert "Thanks, it itches." not in sent  # nor the patient's own words
    # Even an event that lies about the note's visibility: the message document decides.
    note = next(
        e
        for e in await events_of(runtime, cid)
        if e["eventType"] == "conversation.message" and e["data"]["visibility"] == "internal"
    )
    forged = {**note, "version": 999, "id": "evt:999.1", "data": {**note["data"], "visibility": "patient"}}
    message = event_message(forged)
    assert message is not None
    await runtime.bus.send(EVENTS_TOPIC, message)
    before = len(sender.attempts)
    await run_callbacks(runtime)
    assert len(sender.attempts) == before


async def test_redelivery_of_every_event_changes_nothing(
    runtime: Runtime, clock: ManualClock, sender: ScriptedSender
) -> None:
    cid = await a_whole_conversation(runtime, clock)
    await publish(runtime, cid)
    await run_callbacks(runtime)
    state = await state_of(runtime, cid)
    assert state is not None
    delivered = len(sender.attempts)

    # Each event again, as a relay re-sending after the topic's window (new deliveries).
    run = callbacks_function()

    for item in await events_of(runtime, cid):
        message = event_message(item)
        assert message is not None
        received = ReceivedMessage(
            body=message.body,
            message_id=message.message_id,
            sequence_number=1,
            delivery_count=2,
            enqueued_time=clock.now(),
            lock_token="t",
            locked_until=clock.now() + timedelta(minutes=1),
            subject=message.subject,
            session_id=message.session_id,
        )
        await run(functions_message(received))
    again = await state_of(runtime, cid)
    assert again is not None
    assert len(sender.attempts) == delivered
    assert again.etag == state.etag  # not even written
    assert again.body() == state.body()


async def test_a_failing_bot_gets_retries_in_order_then_a_dead_letter_after_the_hour_and_later_events_go_on(
    runtime: Runtime, clock: ManualClock, sender: ScriptedSender
) -> None:
    await seed(runtime, agent_available=False)
    cid = await escalate(escalation())
    await through_routing(runtime)
    sender.failing = "server-error"
    await publish(runtime, cid)
    await run_callbacks(runtime)
    first = sender.attempts[0]
    assert first.type == "queue.position"

    # While it fails, the agent joins and writes: nothing overtakes the position callback.
    await presence("a-1", "available")
    await through_routing(runtime)
    await act("accept_conversation", cid)
    await act("send_message", cid, text="Hello from the nurse.")
    await publish(runtime, cid)
    await run_callbacks(runtime)

    started = clock.now()
    while clock.now() - started < RETRY_WINDOW + timedelta(minutes=20):
        clock.advance(5 if clock.now() - started < timedelta(minutes=2) else 30)
        await run_callbacks(runtime)
    tries = [a for a in sender.attempts if a.id == first.id]
    assert all(a.type == "queue.position" for a in sender.attempts[: len(tries)]), "a later one overtook it"
    assert tries[1].at - tries[0].at <= timedelta(seconds=30)  # the first retry within 30 s
    assert len(tries) >= MIN_ATTEMPTS
    assert tries[-1].at - tries[0].at >= RETRY_WINDOW  # for at least an hour
    gaps = [b.at - a.at for a, b in pairwise(tries)]
    assert gaps[1] > gaps[0]  # backoff grows

    [letter] = [d for d in await dead_letters(runtime.store) if d.callback_id == first.id]
    assert (letter.reason, letter.callback_type, letter.conversation_id) == (
        "server-error",
        "queue.position",
        cid,
    )
    assert letter.attempts == len(tries)

    # Meanwhile the next callback (the agent joined) started afresh and fails too; the bot comes
    # back: it goes, then the agent's message, in order.
    assert {a.type for a in sender.attempts[len(tries) :]} == {"agent.joined"}
    sender.failing = None
    back = len(sender.attempts)
    for _ in range(100):
        clock.advance(15)
        await run_callbacks(runtime)
    assert [a.type for a in sender.attempts[back:]] == ["agent.joined", "message"]
    assert sender.attempts[-1].data["text"] == "Hello from the nurse."
    state = await state_of(runtime, cid)
    assert state is not None
    assert (state.queue.pending, state.queue.delivered, state.queue.dead_lettered) == ([], 2, 1)


async def test_a_conversation_without_a_callback_url_costs_no_write(
    runtime: Runtime, sender: ScriptedSender
) -> None:
    await seed(runtime)
    body = escalation()
    del body["callback"]
    cid = await escalate(body)
    await through_routing(runtime)
    await publish(runtime, cid)
    await run_callbacks(runtime)
    assert sender.attempts == []
    assert await state_of(runtime, cid) is None


async def test_the_bot_hears_a_changed_place_at_the_next_look_at_most_every_15_seconds(
    runtime: Runtime, clock: ManualClock, sender: ScriptedSender
) -> None:
    await seed(runtime, agent_available=False)
    first = await escalate(escalation("chat-cb-first"))
    clock.advance(1)
    second = await escalate(escalation("chat-cb-second"))
    await through_routing(runtime)
    await publish(runtime, first)
    await publish(runtime, second)
    await run_callbacks(runtime)
    told = {a.data["conversationId"]: a.data["position"] for a in sender.attempts}
    assert told == {first: 1, second: 2}

    # The first leaves the queue (the patient gave up): the second is told it is first now, at
    # its next look, not sooner than 15 s after it was last told.
    from tests.callbacks.consumer_support import BOT
    from tests.conftest import invoke

    ended = await invoke(
        "bot_end", method="POST", bearer=BOT, route_params={"botConversationId": "chat-cb-first"}
    )
    assert ended.status == 200, ended.json
    await through_routing(runtime)
    last_told = sender.attempts[-1].at
    for _ in range(10):
        clock.advance(5)
        await run_callbacks(runtime)
    mine = [a for a in sender.attempts if a.data["conversationId"] == second]
    assert [a.data.get("position") for a in mine] == [2, 1]
    assert mine[1].at - last_told >= timedelta(seconds=15)
    assert mine[1].at - last_told <= timedelta(seconds=20)


async def test_a_transfer_tells_the_bot_and_then_its_place_in_the_new_queue(
    runtime: Runtime, clock: ManualClock, sender: ScriptedSender
) -> None:
    await seed(runtime, agent_available=False)
    cid = await escalate(escalation())
    await through_routing(runtime)

    async def pump() -> None:
        await publish(runtime, cid)
        await run_callbacks(runtime)

    await pump()
    await presence("a-1", "available")
    await through_routing(runtime)
    await act("accept_conversation", cid)
    await pump()
    clock.advance(60)
    await presence("a-1", "away")  # nobody to take it back at once
    await act("transfer_conversation", cid, queueId="general")
    await pump()
    assert sender.delivered_types == [
        "queue.position",
        "agent.joined",
        "conversation.transferred",
        "queue.position",
    ]
    assert sender.attempts[2].data == {"conversationId": cid, "botConversationId": "chat-cb-1"}
    assert sender.attempts[3].data["position"] == 1
