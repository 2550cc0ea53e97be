"""The supervisor board and the administrators' agent list page from per-partition lists: queue by
queue in priority order, oldest first, in a stable order across pages, with tokens that fit only
the list that handed them out."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kernel import lists
from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from tests.conftest import Answer, invoke
from tests.routing.support import (
    ADMIN,
    SUPERVISOR,
    agent_token,
    all_items,
    conversation,
    deliver,
    enqueue,
    presence,
    put_agent,
    put_queue,
    put_rules,
)


async def board(params: dict[str, str] | None = None) -> Answer:
    return await invoke("supervisor_board", bearer=SUPERVISOR, params=params or {})


async def every_page(params: dict[str, str]) -> list[Answer]:
    pages = [await board(params)]
    while token := pages[-1].json.get("continuationToken"):
        assert pages[-1].status == 200
        pages.append(await board({**params, "continuationToken": token}))
    assert pages[-1].status == 200
    return pages


@pytest.fixture
async def two_queues(runtime: Runtime, clock: ManualClock) -> None:
    await put_queue("urgent", priority=1)
    await put_queue("general", priority=5)
    await put_rules([{"when": {"urgency": ["urgent"]}, "queueId": "urgent"}], "general")
    for agent_id in ("a-3", "a-1", "a-2"):
        await put_agent(agent_id, queues=["urgent", "general"], capacity=1)


async def fill(runtime: Runtime, clock: ManualClock) -> None:
    """c-1..c-7, one a second: the odd ones urgent; nobody is available, so all wait."""
    for n in range(1, 8):
        await enqueue(runtime, f"c-{n}", urgency="urgent" if n % 2 else "routine")
        clock.advance(1)
    await deliver(runtime)


async def test_the_board_pages_queue_by_queue_oldest_first_with_agents_alongside(
    runtime: Runtime, clock: ManualClock, two_queues: None
) -> None:
    await fill(runtime, clock)
    pages = await every_page({"maxItems": "2"})
    rows = [row for page in pages for row in page.json["items"]]
    assert [row["id"] for row in rows] == ["c-1", "c-3", "c-5", "c-7", "c-2", "c-4", "c-6"]
    assert [row["queueId"] for row in rows] == ["urgent"] * 4 + ["general"] * 3
    assert len(pages) == 4
    assert all(len(page.json["items"]) <= 2 for page in pages)
    # Agents page alongside, by id; once they end their section comes back empty.
    assert [[a["id"] for a in page.json["agents"]] for page in pages] == [["a-1", "a-2"], ["a-3"], [], []]
    # Every page carries the queues' summary; board rows carry no transcript or summary (PHI).
    for page in pages:
        assert {q["queueId"]: q["depth"] for q in page.json["queues"]} == {"urgent": 4, "general": 3}
    assert not {"transcript", "summary", "reason", "messages"} & set(rows[0])


async def test_the_board_follows_status_changes_transfers_and_ends(
    runtime: Runtime, clock: ManualClock, two_queues: None
) -> None:
    await fill(runtime, clock)
    await presence("a-1", "available")
    await deliver(runtime)  # a-1 (capacity 1) is offered the oldest urgent conversation
    offered = await every_page({"status": "offered"})
    assert [row["id"] for page in offered for row in page.json["items"]] == ["c-1"]
    waiting = await every_page({"status": "waiting", "maxItems": "3"})
    assert [row["id"] for page in waiting for row in page.json["items"]] == [
        "c-3",
        "c-5",
        "c-7",
        "c-2",
        "c-4",
        "c-6",
    ]

    moved = await invoke(
        "transfer_conversation",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": "c-2"},
        json_body={"queueId": "urgent"},
    )
    assert moved.status == 200, moved.json
    closed = await invoke(
        "supervisor_force_close",
        method="POST",
        bearer=SUPERVISOR,
        route_params={"conversationId": "c-3"},
        json_body={"reason": "test"},
    )
    assert closed.status == 200, closed.json
    rows = [row for page in await every_page({"maxItems": "4"}) for row in page.json["items"]]
    # c-2 keeps its age in its new queue; c-3 is gone; each conversation is listed once.
    assert [(row["id"], row["queueId"]) for row in rows] == [
        ("c-1", "urgent"),
        ("c-2", "urgent"),
        ("c-5", "urgent"),
        ("c-7", "urgent"),
        ("c-4", "general"),
        ("c-6", "general"),
    ]
    entries = await all_items(runtime, lists.LISTS)
    assert sorted(e["id"] for e in entries if e["list"].startswith("live-conversations:")) == [
        "c-1",
        "c-2",
        "c-4",
        "c-5",
        "c-6",
        "c-7",
    ]
    assert (await conversation(runtime, "c-3"))["status"] == "closed"


async def test_a_conversation_added_between_pages_is_listed_once_in_its_place(
    runtime: Runtime, clock: ManualClock, two_queues: None
) -> None:
    await fill(runtime, clock)
    first = await board({"maxItems": "3"})
    assert [row["id"] for row in first.json["items"]] == ["c-1", "c-3", "c-5"]
    await enqueue(runtime, "c-8", urgency="urgent")  # newest urgent: after the cursor
    await enqueue(runtime, "c-9")
    await deliver(runtime)
    rest = await every_page({"maxItems": "3", "continuationToken": first.json["continuationToken"]})
    ids = [row["id"] for page in rest for row in page.json["items"]]
    assert ids == ["c-7", "c-8", "c-2", "c-4", "c-6", "c-9"]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"status": "closed"}, id="closed-is-not-live"),
        pytest.param({"status": "sleeping"}, id="unknown-status"),
        pytest.param({"maxItems": "0"}, id="max-items-zero"),
        pytest.param({"continuationToken": "bm90IG91cnM"}, id="garbage-token"),
        pytest.param({"continuationToken": "!!"}, id="not-base64"),
    ],
)
async def test_bad_board_requests_are_400(runtime: Runtime, two_queues: None, params: dict[str, str]) -> None:
    answer = await board(params)
    assert answer.status == 400, answer.json
    assert answer.headers["Content-Type"] == "application/problem+json"


async def test_a_board_token_fits_only_its_own_filter(
    runtime: Runtime, clock: ManualClock, two_queues: None
) -> None:
    await fill(runtime, clock)
    waiting = await board({"status": "waiting", "maxItems": "1"})
    handed = waiting.json["continuationToken"]
    assert (await board({"status": "offered", "continuationToken": handed})).status == 400
    assert (await board({"continuationToken": handed})).status == 400
    assert (await board({"status": "waiting", "continuationToken": handed})).status == 200
    agents = await invoke("list_agents", bearer=ADMIN, params={"maxItems": "1"})
    assert (await board({"continuationToken": agents.json["continuationToken"]})).status == 400


async def test_administrators_page_through_agents_by_id(runtime: Runtime, two_queues: None) -> None:
    await presence("a-2", "available")
    seen: list[dict[str, Any]] = []
    params: dict[str, str] = {"maxItems": "2"}
    while True:
        answer = await invoke("list_agents", bearer=SUPERVISOR, params=params)
        assert answer.status == 200, answer.json
        seen += answer.json["items"]
        if "continuationToken" not in answer.json:
            break
        params = {"maxItems": "2", "continuationToken": answer.json["continuationToken"]}
    assert [a["id"] for a in seen] == ["a-1", "a-2", "a-3"]
    assert seen[1]["presence"] == "available"  # re-read: live presence, not a copy in the list
    for bad in ({"maxItems": "0"}, {"maxItems": "1001"}, {"continuationToken": "x"}, {"limit": "2"}):
        assert (await invoke("list_agents", bearer=ADMIN, params=bad)).status == 400, bad


def rows_by_id(answer: Answer) -> dict[str, dict[str, Any]]:
    assert answer.status == 200, answer.json
    return {row["id"]: row for row in answer.json["items"]}


async def test_a_waiting_conversation_no_agent_may_take_says_why_and_one_merely_waiting_does_not(
    runtime: Runtime,
) -> None:
    await put_queue("spanish")
    await put_queue("cardio", requiredSkills={"cardio": 3})  # exact matching by default
    await put_queue("relaxed", skillMatch="closest", requiredSkills={"cardio": 3})
    await put_queue("heavy", capacityUnits=3)
    await put_queue("empty")
    await put_queue("mixed", requiredSkills={"cardio": 3})
    await put_queue("general")
    rules = [
        {"when": {"context": {"line": q}}, "queueId": q}
        for q in ("cardio", "relaxed", "heavy", "empty", "mixed")
    ]
    await put_rules([{"when": {"language": ["es"]}, "queueId": "spanish"}, *rules], "general")
    await put_agent("a-en", queues=["spanish", "general"], languages=["en"])
    await put_agent("a-junior", queues=["cardio", "relaxed", "mixed"], skills={"cardio": 1})
    await put_agent("a-small", queues=["heavy"], capacity=2)
    await put_agent("a-pl", queues=["mixed"], languages=["pl"], skills={"cardio": 5})
    # Nobody is available: every conversation waits; only structure decides the flag.
    await enqueue(runtime, "c-es", language="es-MX")
    for line in ("cardio", "relaxed", "heavy", "empty", "mixed"):
        await enqueue(runtime, f"c-{line}", context={"line": line})
    await enqueue(runtime, "c-plain")
    await deliver(runtime)

    rows = rows_by_id(await board({"status": "waiting"}))
    reasons = {cid: row.get("unassignable", {}).get("reason") for cid, row in rows.items()}
    assert reasons == {
        "c-es": "no-agent-with-language",
        "c-cardio": "no-agent-with-skills",
        "c-relaxed": None,  # closest matching: the junior may take it once present
        "c-heavy": "no-agent-with-capacity",
        "c-empty": "no-agents",
        "c-mixed": "no-eligible-agent",  # one lacks the skill, the other the language
        "c-plain": None,  # a-en is offline: waiting, not unassignable
    }
    assert not any("outOfHours" in row for row in rows.values())

    # An administrator's profile change clears it at once, though the agent is still offline.
    await put_agent("a-junior", queues=["cardio", "relaxed", "mixed"], skills={"cardio": 3})
    rows = rows_by_id(await board({"status": "waiting"}))
    assert "unassignable" not in rows["c-cardio"]
    assert "unassignable" not in rows["c-mixed"]


async def test_a_conversation_every_agent_declined_is_unassignable_until_another_agent_joins(
    runtime: Runtime,
) -> None:
    await put_queue("general")
    await put_rules([], "general")
    await put_agent("a-1", queues=["general"], capacity=1)
    await presence("a-1", "available")
    await enqueue(runtime, "c-1")
    for _ in range(3):
        await deliver(runtime)
        declined = await invoke(
            "decline_conversation",
            method="POST",
            bearer=agent_token("a-1"),
            route_params={"conversationId": "c-1"},
        )
        assert declined.status == 200, declined.json
    await deliver(runtime)
    rows = rows_by_id(await board())
    assert rows["c-1"]["status"] == "waiting"
    assert rows["c-1"]["unassignable"] == {"reason": "all-agents-declined"}

    await put_agent("a-2", queues=["general"], capacity=1)  # offline, but could take it
    assert "unassignable" not in rows_by_id(await board())["c-1"]


async def test_a_waiting_conversation_in_a_queue_closed_by_its_hours_shows_out_of_hours(
    runtime: Runtime, clock: ManualClock
) -> None:
    # The manual clock starts on Monday 09:00 UTC: open for one more hour.
    hours = {"timeZone": "UTC", "weeklyHours": {"mon": [["09:00", "10:00"]]}}
    await put_queue("day", operatingHours=hours)
    await put_rules([], "day")
    await enqueue(runtime, "c-1")
    await deliver(runtime)
    row = rows_by_id(await board())["c-1"]
    assert (row["status"], row["unassignable"]) == ("waiting", {"reason": "no-agents"})
    assert "outOfHours" not in row

    clock.advance(3600)
    row = rows_by_id(await board())["c-1"]
    assert row["outOfHours"] is True
    assert "unassignable" not in row  # closed says it instead
