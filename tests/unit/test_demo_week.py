"""The demo week (`python -m devhost --demo`): a week of history made through the services and
their events, seeded once into a fresh store, leaving the demo agents free and available."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from shared.demo import seed_demo
from shared.exports.api import export_days
from shared.kernel.documents import Query, where
from shared.runtime import Runtime
from tests.conftest import invoke, registered_functions, token
from tests.history.support import topic_message, written_envelopes


async def events(runtime: Runtime, container: str) -> list[dict]:
    items: list[dict] = []
    token = None
    while True:
        page = await runtime.store.container(container).query_cross_partition(
            Query((where("type", "=", "event"),)), max_items=500, continuation=token
        )
        items += page.items
        token = page.continuation
        if not token:
            return items


async def test_the_demo_week_is_history_made_through_the_services_once(runtime: Runtime) -> None:
    info = await seed_demo(runtime, history=True)
    today = runtime.clock.now().date()
    assert any(line.startswith("Demo week") for line in info.lines), info.lines

    conversation_events = await events(runtime, "conversations")
    kinds = Counter(e["eventType"] for e in conversation_events)
    for kind in (
        "waiting",
        "offered",
        "declined",
        "accepted",
        "message",
        "transferred",
        "abandoned",
        "wrapup",
        "closed",
    ):
        assert kinds[f"conversation.{kind}"] > 0, kind
    assert kinds["conversation.closed"] == kinds["conversation.waiting"] - kinds["conversation.transferred"]
    appointment_kinds = Counter(e["eventType"] for e in await events(runtime, "appointments"))
    assert appointment_kinds["appointment.booked"] > 0
    assert appointment_kinds["appointment.fulfilled"] + appointment_kinds["appointment.noshow"] > 0
    days = {e["at"][:10] for e in conversation_events}
    assert days == {(today - timedelta(days=n)).isoformat() for n in range(1, 8)}, "seven days, none today"

    agents = [
        await runtime.store.container("agents").read(a, a)
        for a in ("demo-agent-1", "demo-agent-2", "demo-agent-3")
    ]
    assert {(a["presence"], a["used"]) for a in agents} == {("available", 0)}
    presence = [e for e in await events(runtime, "agents") if e["eventType"] == "agent.presence"]
    assert presence
    assert all(e["at"][:10] < today.isoformat() or e["data"]["status"] == "available" for e in presence)

    again = await seed_demo(runtime, history=True)
    assert not any(line.startswith("Demo week") for line in again.lines)
    assert len(await events(runtime, "conversations")) == len(conversation_events), "never a second week"

    # The week is in the KPIs at once (no waiting for the consumer to catch up)...
    supervisor = token("Supervisor", sub="demo-supervisor")
    week = {"from": f"{today - timedelta(days=7)}T00:00:00Z", "to": f"{today}T00:00:00Z", "interval": "1d"}
    before = await invoke("supervisor_kpis", bearer=supervisor, params=week)
    assert before.status == 200, before.json
    totals = before.json["totals"]
    first_waits = [
        e for e in conversation_events if e["eventType"] == "conversation.waiting" and e["data"]["first"]
    ]
    assert totals["incoming"] == len(first_waits)
    assert totals["engaged"] > 0
    assert totals["abandoned"] + totals["shortAbandoned"] == kinds["conversation.abandoned"]
    assert len([d for d in before.json["series"] if d["incoming"]]) == 7
    # ...and when the relay delivers the same events to the history and KPI consumers, as the dev
    # host does, nothing changes.
    history = registered_functions()["event_history"].get_user_function()
    kpis = registered_functions()["kpi_events"].get_user_function()
    for envelope in await written_envelopes(runtime):
        await history(topic_message(envelope))
        await kpis(topic_message(envelope))
    after = await invoke("supervisor_kpis", bearer=supervisor, params=week)
    assert after.json == before.json

    result = await export_days(runtime, today - timedelta(days=7), today - timedelta(days=1))
    assert result.rows["conversations"] == kinds["conversation.closed"]
    assert result.rows["appointments"] == sum(appointment_kinds.values())


async def test_a_store_seeded_before_gets_no_week(runtime: Runtime) -> None:
    await seed_demo(runtime)
    info = await seed_demo(runtime, history=True)
    assert not any(line.startswith("Demo week") for line in info.lines)
    assert not [e for e in await events(runtime, "conversations")]
