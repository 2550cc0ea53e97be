"""KPIs from the events the real services write (not hand-made envelopes): a conversation
escalated, offered, answered with an internal note then a reply, and closed, counted through both
consumers; the history and the buckets hold ids, stamps and counts, never what anyone said."""

from __future__ import annotations

import json
from datetime import timedelta

from shared.kernel.clock import ManualClock
from shared.kpis.api import kpi_range
from shared.runtime import Runtime
from tests.conftest import invoke, registered_functions, stored_items
from tests.history.support import topic_message, written_envelopes
from tests.routing.support import agent_token, deliver, enqueue, presence, put_agent, put_queue, put_rules

A1 = agent_token("a-1")
NOTE, REPLY = "Internal: check the chart first", "Hello, how can I help?"


async def act(name: str, cid: str, body: object = None) -> None:
    answer = await invoke(
        name, method="POST", bearer=A1, route_params={"conversationId": cid}, json_body=body
    )
    assert answer.status in (200, 201), answer.json


async def test_a_real_conversation_counts_its_reply_not_its_internal_note_and_stores_no_words(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general", serviceLevelSeconds=45, wrapupSeconds=20)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"])
    await presence("a-1", "available")
    start = clock.now()
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    clock.advance(12)
    await act("accept_conversation", "c-1")
    clock.advance(5)
    await act("send_message", "c-1", {"text": NOTE, "visibility": "internal"})
    clock.advance(20)
    await act("send_message", "c-1", {"text": REPLY})
    clock.advance(60)
    await act("close_conversation", "c-1", {"disposition": "resolved"})
    clock.advance(21)
    await deliver(runtime)

    functions = registered_functions()
    for name in ("event_history", "kpi_events"):
        handler = functions[name].get_user_function()
        for event in await written_envelopes(runtime):
            await handler(topic_message(event))

    hour = start.replace(minute=0, second=0, microsecond=0)
    totals = (await kpi_range(runtime.store, hour, hour + timedelta(hours=1), "1h", queue_id="general"))[
        "totals"
    ]
    assert (totals["incoming"], totals["engaged"], totals["serviceLevel"]) == (1, 1, 1.0)
    assert totals["asaSeconds"] == 12.0
    assert totals["firstResponseSeconds"] == 25.0  # the reply, 25 s after the acceptance; not the note
    assert totals["ahtSeconds"] == 85.0 + 21.0  # active (accepted to closed) plus wrap-up
    assert totals["utilization"] is not None

    kept = json.dumps([*await stored_items(runtime, "history"), *await stored_items(runtime, "kpis")])
    for words in (NOTE, REPLY, "Needs help", "Summary for the agent", "I feel unwell", "resolved"):
        assert words not in kept
