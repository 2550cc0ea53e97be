"""What a conversation's moves leave behind: the reason the bot sent survives every move (decline,
offer timeout, transfer, overflow by wait and on arrival), and each move's own cause and actor are
in the history, never in the document's fields."""

from __future__ import annotations

from typing import Any

from shared.conversations.api import bot_key, conversation_id_for
from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from tests.conftest import invoke
from tests.routing.support import (
    BOT,
    agent_token,
    conversation,
    deliver,
    presence,
    put_agent,
    put_queue,
    put_rules,
)

A1 = agent_token("a-1")
ESCALATION: dict[str, Any] = {
    "botConversationId": "bot-history-1",
    "patient": {"email": "history@example.org"},
    "reason": "Chest pain since the morning",
    "triage": {"urgency": "urgent"},
    "transcript": [],
}
CID = conversation_id_for(bot_key("dev:bot-1", "bot-history-1"))  # BOT is a dev token, sub bot-1


async def act(name: str, bearer: str = A1, body: dict[str, Any] | None = None) -> Any:
    answer = await invoke(
        name, method="POST", bearer=bearer, route_params={"conversationId": CID}, json_body=body
    )
    assert answer.status == 200, answer.json
    return answer


async def test_the_reason_the_bot_sent_survives_every_move_and_each_cause_is_in_the_history(
    runtime: Runtime, clock: ManualClock
) -> None:
    await put_queue("general", acceptTimeoutSeconds=30)
    await put_queue("last")
    closed = {"timeZone": "UTC", "weeklyHours": {}}
    await put_queue("backup", operatingHours=closed, overflow={"action": "transfer", "targetQueueId": "last"})
    await put_queue("slow", overflow={"maxWaitSeconds": 60, "action": "transfer", "targetQueueId": "backup"})
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=1)
    await presence("a-1", "available")

    answer = await invoke("escalate", method="POST", bearer=BOT, json_body=ESCALATION)
    assert answer.status == 202, answer.json
    reason = ESCALATION["reason"]

    async def still_the_bots_reason() -> dict[str, Any]:
        doc = await conversation(runtime, CID)
        assert doc["reason"] == reason
        assert not {"by", "cause"} & doc.keys()
        return doc

    await deliver(runtime)
    assert (await still_the_bots_reason())["status"] == "offered"
    await act("decline_conversation")
    await deliver(runtime)
    assert (await still_the_bots_reason())["status"] == "offered"  # the only agent, again
    clock.advance(31)
    await deliver(runtime)  # the offer expires and is made again
    assert (await still_the_bots_reason())["status"] == "offered"
    await act("accept_conversation")
    await act("transfer_conversation", body={"queueId": "slow"})
    await deliver(runtime)
    assert (await still_the_bots_reason())["queueId"] == "slow"
    clock.advance(61)
    await deliver(runtime)  # overflow by wait to backup, which is closed: on to the last queue
    doc = await still_the_bots_reason()
    assert (doc["queueId"], doc["status"]) == ("last", "waiting")

    causes = [(entry["event"], entry.get("cause")) for entry in doc["history"] if entry.get("cause")]
    assert causes == [
        ("decline", "declined"),
        ("expire", "timeout"),
        ("requeue", "transfer"),
        ("requeue", "overflow-wait"),
        ("requeue", "overflow-arrival"),
    ]
    by = {entry["event"]: entry.get("by") for entry in doc["history"]}
    assert by["accept"] == "a-1"
    assert by["decline"] == "a-1"
    assert [e.get("queueId") for e in doc["history"] if e["event"] == "requeue"] == ["slow", "backup", "last"]


def test_a_move_cannot_overwrite_what_the_escalation_fixed() -> None:
    import pytest

    from shared.conversations.model import move

    doc = {"id": "c-1", "status": "offered", "reason": "Rash", "history": []}
    for field in ("reason", "patientId", "status", "history"):
        with pytest.raises(TypeError):
            move(doc, "decline", ManualClock().now(), **{field: "x"})
    moved = move(doc, "decline", ManualClock().now(), agentId=None, by="a-1", cause="declined")
    assert moved["reason"] == "Rash"
    assert moved["history"][-1] == {
        "at": "2026-01-05T09:00:00.000Z",
        "event": "decline",
        "agentId": None,
        "by": "a-1",
        "cause": "declined",
    }
