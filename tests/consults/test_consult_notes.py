# ruff: noqa: F811 (the consult fixtures, imported)
"""A provider's reply lands in the conversation as an internal note, pushed to the agent by its
event and never to the patient or the bot: one test per path that exists on this branch (the
patient's REST reads, the event the hub and bot-callback consumers read, the logs). The consult,
the note and their events commit in one batch, so a redelivered reply writes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.conversations.model import Status
from shared.kernel.documents import Query, where
from shared.kernel.outbox import event_message
from shared.runtime import Runtime
from tests.conftest import invoke, token
from tests.consults.test_consults import (  # noqa: F401 (fixtures)
    QUESTION,
    cardiology,
    consult,
    events,
    reply,
    sent,
    teams,
    workflows,
)
from tests.consults.workflows import activity
from tests.workspace.support import AGENT, SUPERVISOR, all_items

PATIENT = token("Patient", sub="oid-p1", patient_id="p-1")
ANSWER = "Yes, 5 mg amlodipine is fine; recheck the ankles in a week."


async def staff_messages(bearer: str = AGENT) -> list[dict[str, Any]]:
    answer = await invoke("read_messages", bearer=bearer, route_params={"conversationId": "c-1"})
    assert answer.status == 200, answer.json
    items: list[dict[str, Any]] = answer.json["items"]
    return items


async def conversation_events(runtime: Runtime) -> list[dict[str, Any]]:
    page = await runtime.store.container("conversations").query(
        Query((where("type", "=", "event"),)), partition_key="c-1"
    )
    return sorted(page.items, key=lambda item: (item["version"], item["n"]))


async def test_a_reply_lands_as_an_internal_note_for_the_agent(sent: str, cardiology: Runtime) -> None:
    answer = await reply(activity(f"{sent} {ANSWER}"))
    assert answer.status == 200, answer.json
    (note,) = await staff_messages()
    assert note["visibility"] == "internal"
    assert note["from"] == {"role": "system", "id": f"consult:{sent.replace('-', '')}", "name": "Dr Nowak"}
    assert note["text"] == f"Consult {sent}, answered by Dr Nowak: {sent} {ANSWER}"
    assert await staff_messages(SUPERVISOR) == [note]


async def test_the_patient_never_reads_the_note(sent: str, cardiology: Runtime) -> None:
    await reply(activity(f"{sent} {ANSWER}"))
    answer = await invoke("my_messages", bearer=PATIENT, route_params={"conversationId": "c-1"})
    assert answer.status == 200, answer.json
    assert answer.json["items"] == []
    assert ANSWER not in answer.body.decode()
    conversation = await invoke("my_conversation", bearer=PATIENT, route_params={"conversationId": "c-1"})
    assert conversation.status == 200
    assert ANSWER not in conversation.body.decode()


async def test_the_note_s_event_says_internal_and_carries_no_text(sent: str, cardiology: Runtime) -> None:
    """What the hub's and the bot callbacks' consumers receive: they read a message's text from
    the store by id and must skip `internal` ones; the event itself holds no text to leak."""
    await reply(activity(f"{sent} {ANSWER}"))
    items = await conversation_events(cardiology)
    assert [item["eventType"] for item in items] == [
        "consult.sent",
        "conversation.message",
        "consult.answered",
    ]
    message, answered = (event_message(item) for item in items[1:])
    assert answered is not None
    assert message is not None
    assert (message.subject, message.session_id) == ("conversation.message", "c-1")
    body = json.loads(message.body)
    assert body["data"]["visibility"] == "internal"
    assert body["data"]["from"] == {"role": "system", "id": f"consult:{sent.replace('-', '')}"}
    for event in (answered, message):
        assert ANSWER not in event.body.decode()
        assert QUESTION not in event.body.decode()
    # The consult's answer and the note are one change of the conversation.
    assert items[1]["version"] == items[2]["version"]


async def test_no_log_line_holds_the_reply(
    sent: str, cardiology: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert (await reply(activity(f"{sent} {ANSWER}"))).status == 200
    assert "consult reply landed" in [record.getMessage() for record in caplog.records]
    for record in caplog.records:
        assert "amlodipine" not in record.getMessage()
        assert "amlodipine" not in json.dumps(record.__dict__, default=str)


async def test_a_redelivered_reply_writes_no_second_note(sent: str, cardiology: Runtime) -> None:
    payload = activity(f"{sent} {ANSWER}")
    await reply(payload)
    before = await all_items(cardiology, "conversations")
    again = await reply(payload)
    assert again.status == 200
    assert await all_items(cardiology, "conversations") == before
    assert len(await staff_messages()) == 1


async def test_each_further_reply_is_a_further_note_without_a_consult_event(
    sent: str, cardiology: Runtime
) -> None:
    await reply(activity(f"{sent} {ANSWER}"))
    await reply(activity(f"{sent} Also check potassium.", activity_id="1700000000002"))
    assert [m["text"].split(": ", 1)[1] for m in await staff_messages()] == [
        f"{sent} {ANSWER}",
        f"{sent} Also check potassium.",
    ]
    kinds = [item["eventType"] for item in await conversation_events(cardiology)]
    assert kinds == ["consult.sent", "conversation.message", "consult.answered", "conversation.message"]


async def test_a_reply_after_the_conversation_closed_stays_on_the_consult(
    sent: str, cardiology: Runtime
) -> None:
    from shared.conversations.api import conversations

    await conversations.change(cardiology.store, "c-1", lambda doc: doc.changed(status=Status.CLOSED))
    assert (await reply(activity(f"{sent} {ANSWER}"))).status == 200
    read = await invoke(
        "get_consult", bearer=SUPERVISOR, route_params={"conversationId": "c-1", "consultId": sent}
    )
    assert read.json["status"] == "answered"
    assert len(read.json["replies"]) == 1
    assert await staff_messages(SUPERVISOR) == []
