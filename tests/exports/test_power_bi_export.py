"""The Power BI feed: a known sequence of conversations and an appointment, exported through the
real services and events, read back with an independent Parquet reader (pyarrow; DuckDB wrote it)
and joined to its dimensions; no PHI in any file; a re-export replaces; a day without events
still has every fact's columns (notifications and surveys: test_followup_facts.py); `python -m ops
export` writes the same files; the blob store against Azurite."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from shared.exports.api import FACTS, export_days
from shared.kernel.clock import ManualClock
from shared.runtime import Runtime
from tests.conftest import invoke, registered_functions
from tests.history.support import topic_message, written_envelopes
from tests.routing.support import (
    SUPERVISOR,
    agent_token,
    deliver,
    enqueue,
    presence,
    put_agent,
    put_queue,
    put_rules,
)

# Recent: the outbox the history is filed from keeps events 14 days (and the ops command reads with
# the system clock); the day starts at 09:00 so every stamp lands on it.
DAY = (datetime.now(UTC) - timedelta(days=2)).date()
A1 = agent_token("a-1")


@pytest.fixture
def environ() -> Iterator[None]:
    """`python -m ops` loads the settings file into os.environ, as the dev host does: put it back,
    so later tests do not inherit the sample's secrets."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(DAY.year, DAY.month, DAY.day, 9, 0, tzinfo=UTC))


async def act(name: str, bearer: str, cid: str, body: object = None) -> None:
    answer = await invoke(
        name, method="POST", bearer=bearer, route_params={"conversationId": cid}, json_body=body
    )
    assert answer.status in (200, 201), answer.json


async def message(cid: str, bearer: str, text: str) -> None:
    answer = await invoke(
        "send_message",
        method="POST",
        bearer=bearer,
        route_params={"conversationId": cid},
        json_body={"text": text},
    )
    assert answer.status == 201, answer.json


async def known_day(runtime: Runtime, clock: ManualClock) -> None:
    """c-1 handled in 8 s (threshold 30), with a first reply after 20 s; c-2 abandoned after 45 s;
    c-3 handled in general, transferred to billing and handled there; c-4 left after 4 s."""
    await put_queue("general", serviceLevelSeconds=30, wrapupSeconds=10)
    await put_queue("billing", serviceLevelSeconds=60, wrapupSeconds=10)
    await put_rules([], "general")
    await put_agent("a-1", queues=["general", "billing"], capacity=3)
    await presence("a-1", "available")

    await enqueue(runtime, "c-1")
    await deliver(runtime)
    clock.advance(8)
    await act("accept_conversation", A1, "c-1")
    clock.advance(20)
    await message("c-1", A1, "Hello Anna, this is your nurse")
    clock.advance(100)
    await act("close_conversation", A1, "c-1", {"disposition": "resolved"})
    clock.advance(11)
    await deliver(runtime)

    await presence("a-1", "away")
    await enqueue(runtime, "c-2")
    await deliver(runtime)
    clock.advance(45)
    await act("abandon_conversation", SUPERVISOR, "c-2")

    await presence("a-1", "available")
    await enqueue(runtime, "c-3")
    await deliver(runtime)
    clock.advance(5)
    await act("accept_conversation", A1, "c-3")
    clock.advance(30)
    await act("transfer_conversation", A1, "c-3", {"queueId": "billing"})
    await deliver(runtime)
    clock.advance(5)
    await act("accept_conversation", A1, "c-3")
    clock.advance(60)
    await act("close_conversation", A1, "c-3", {"disposition": "billing question"})
    clock.advance(11)
    await deliver(runtime)

    await presence("a-1", "away")
    await enqueue(runtime, "c-4")
    await deliver(runtime)
    clock.advance(4)
    await act("abandon_conversation", SUPERVISOR, "c-4")


async def file_history(runtime: Runtime) -> int:
    """What the relay and the history consumer do in the app: every event the services wrote goes
    through the real `event_history` function as the topic would deliver it."""
    consume = registered_functions()["event_history"].get_user_function()
    envelopes = await written_envelopes(runtime)
    for envelope in envelopes:
        await consume(topic_message(envelope))
    return len(envelopes)


def read(root: Path, table: str) -> pa.Table:
    """A table as Power BI's folder connector sees it: every file under the table's folder, the
    date folders as a Hive partition."""
    return ds.dataset(root / table, format="parquet", partitioning="hive").to_table()


async def test_the_export_joins_facts_to_dimensions_and_gives_the_known_numbers(
    runtime: Runtime, clock: ManualClock
) -> None:
    await known_day(runtime, clock)
    await file_history(runtime)
    result = await export_days(runtime, DAY, DAY)
    root = runtime.settings.data_dir / "exports"

    conversations = read(root, "conversations")
    queues, agents, dates = read(root, "queues"), read(root, "agents"), read(root, "dates")
    joined = (
        conversations.join(queues, "queueId", join_type="inner", right_suffix=":queue")
        .join(dates.drop_columns(["date"]), "dateKey", join_type="inner")
        .to_pylist()
    )
    rows = {r["conversationId"]: r for r in joined}
    assert set(rows) == {"c-1", "c-2", "c-3", "c-4"}, "every fact finds its queue and its date"
    assert {r["dateKey"] for r in joined} == {DAY}
    assert {str(r["date"]) for r in conversations.to_pylist()} == {DAY.isoformat()}

    c1, c2, c3, c4 = rows["c-1"], rows["c-2"], rows["c-3"], rows["c-4"]
    assert (c1["engaged"], c1["handled"], c1["firstWaitSeconds"], c1["withinServiceLevel"]) == (
        True,
        True,
        8.0,
        True,
    )
    assert (c1["firstResponseSeconds"], c1["activeSeconds"], c1["wrapupSeconds"]) == (20.0, 120.0, 11.0)
    # Messages written in the conversation (the bot's transcript came with the escalation).
    assert (c1["handleSeconds"], c1["messages"], c1["agentMessages"], c1["offers"]) == (131.0, 1, 1, 1)
    # The threshold as it was when the conversation queued, beside the queue's setting now.
    assert (c1["serviceLevelSeconds"], c1["serviceLevelSeconds:queue"]) == (30, 30)
    assert (c1["priority"], c1["endReason"]) == (100, "completed")
    assert (c2["abandoned"], c2["engaged"], c2["abandonWaitSeconds"], c2["withinServiceLevel"]) == (
        True,
        False,
        45.0,
        None,
    )
    assert c2["handleSeconds"] is None
    assert c2["endReason"] == "abandoned"
    assert (c3["queueId"], c3["firstQueueId"], c3["transfers"], c3["agentId"]) == (
        "billing",
        "general",
        1,
        "a-1",
    )
    assert (c3["firstWaitSeconds"], c3["serviceLevelSeconds"], c3["activeSeconds"]) == (5.0, 30, 95.0)
    assert c4["abandonWaitSeconds"] == 4.0, "a short abandon is told apart by its wait"

    by_agent = {
        r["conversationId"] for r in conversations.join(agents, "agentId", join_type="inner").to_pylist()
    }
    assert by_agent == {"c-1", "c-3"}, "handled conversations find their agent"
    assert {r["queueId"] for r in queues.to_pylist()} == {"general", "billing"}
    assert result.rows["conversations"] == 4


async def test_an_appointment_and_its_outcome_are_facts_that_find_their_provider(
    runtime: Runtime, clock: ManualClock
) -> None:
    from shared.demo import seed_demo

    await seed_demo(runtime)  # patients and providers (no history)
    nurse = agent_token("a-1")
    slots = await invoke(
        "provider_slots",
        bearer=nurse,
        route_params={"providerId": "dr-okafor"},
        params={"from": clock.now().isoformat(), "to": (clock.now() + timedelta(days=6)).isoformat()},
    )
    assert slots.status == 200, slots.json
    start = slots.json["slots"][0]["start"]
    booked = await invoke(
        "book_appointment",
        method="POST",
        bearer=nurse,
        json_body={
            "providerId": "dr-okafor",
            "start": start,
            "patientId": "p-demo-1",
            "reason": "Rash on the arm",
        },
    )
    assert booked.status == 201, booked.json
    visit = datetime.fromisoformat(start.replace("Z", "+00:00"))
    clock.set(visit + timedelta(minutes=20))
    marked = await invoke(
        "set_appointment_status",
        method="POST",
        bearer=nurse,
        route_params={"appointmentId": booked.json["id"]},
        json_body={"status": "noshow"},
    )
    assert marked.status == 200, marked.json
    await file_history(runtime)
    await export_days(runtime, DAY, visit.date())

    root = runtime.settings.data_dir / "exports"
    appointments = read(root, "appointments").join(
        read(root, "providers"), "providerId", right_suffix=":provider"
    )
    rows = sorted(appointments.to_pylist(), key=lambda r: r["at"])
    assert [(a["change"], a["providerId"], a["specialty"], a["timeZone"]) for a in rows] == [
        ("booked", "dr-okafor", "family-medicine", "Europe/London"),
        ("noshow", "dr-okafor", "family-medicine", "Europe/London"),
    ]
    assert {a["startDate"] for a in rows} == {visit.date()}, "the no-show rate counts by the visit's day"
    assert [a["dateKey"] for a in rows] == [DAY, visit.date()]
    assert rows[0]["start"] == visit.replace(tzinfo=None)


async def test_no_file_holds_a_name_a_reason_or_anything_the_patient_said(
    runtime: Runtime, clock: ManualClock
) -> None:
    await known_day(runtime, clock)
    await file_history(runtime)
    await export_days(runtime, DAY, DAY)
    root = runtime.settings.data_dir / "exports"
    files = sorted(root.rglob("*.parquet"))
    assert files
    for path in files:
        table = pq.read_table(path)
        text = str(table.to_pylist()) + str(table.schema)
        for phi in (
            "Anna",
            "nurse",
            "Needs help",
            "Summary for the agent",
            "I feel unwell",
            "resolved",
            "billing question",
            "p-1",
        ):
            assert phi not in text, (path.name, phi)
        assert not {"name", "patientId", "phone", "email", "text", "reason"} & set(table.column_names)


async def test_exporting_a_day_again_replaces_its_files(runtime: Runtime, clock: ManualClock) -> None:
    await known_day(runtime, clock)
    await file_history(runtime)
    first = await export_days(runtime, DAY, DAY)
    again = await export_days(runtime, DAY, DAY)
    root = runtime.settings.data_dir / "exports"
    assert first.files == again.files
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(
        first.files
    )
    assert read(root, "conversations").num_rows == 4


async def test_a_day_without_events_still_has_every_fact_file_with_its_columns(runtime: Runtime) -> None:
    # The notifications and surveys with rows: tests/exports/test_followup_facts.py.
    await export_days(runtime, DAY, DAY + timedelta(days=1))
    root = runtime.settings.data_dir / "exports"
    for table in FACTS:
        for day in (DAY, DAY + timedelta(days=1)):
            schema = pq.read_schema(root / table.file(day))
            assert schema.names == list(table.columns), table.name
    assert read(root, "notifications").num_rows == 0
    assert read(root, "surveys").num_rows == 0
    assert [r["dateKey"] for r in read(root, "dates").to_pylist()] == [DAY, DAY + timedelta(days=1)]


@pytest.mark.usefixtures("environ")
async def test_the_ops_command_exports_the_dev_hosts_data(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from ops.cli import main

    await known_day(runtime, clock)
    await file_history(runtime)
    data = runtime.settings.data_dir
    monkeypatch.setenv("PSC_DATA_DIR", str(data))
    monkeypatch.setenv("PSC_AUTH_MODE", "dev")
    status = await asyncio.to_thread(main, ["export", "--from", DAY.isoformat(), "--to", DAY.isoformat()])
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"conversations/date={DAY.isoformat()}/conversations.parquet" in out
    assert "conversations 4" in out
    assert read(data / "exports", "conversations").num_rows == 4


@pytest.mark.usefixtures("environ")
def test_the_ops_command_refuses_a_range_backwards_or_too_long(capsys: pytest.CaptureFixture[str]) -> None:
    from ops.cli import main

    assert main(["export", "--from", "2026-12-02", "--to", "2026-12-01"]) == 2
    assert main(["export", "--from", "2026-01-01", "--to", "2026-12-01"]) == 2
    assert "at most 93 days" in capsys.readouterr().err


AZURITE = os.environ.get("PSC_TEST_AZURITE_BLOB")


@pytest.mark.skipif(not AZURITE, reason="PSC_TEST_AZURITE_BLOB (an Azurite connection string) is not set")
async def test_the_blob_exports_replace_and_read_back_through_azurite(
    runtime: Runtime, clock: ManualClock
) -> None:
    import uuid

    from shared.adapters.blob_exports import BlobExports
    from shared.exports.api import HistoryEvents, PowerBiExport
    from shared.exports.dimensions import current_dimensions

    exports = BlobExports(
        f"exports-{uuid.uuid4().hex[:12]}", connection_string=AZURITE, create_container=True
    )
    try:
        await known_day(runtime, clock)
        await file_history(runtime)
        store = runtime.store
        job = PowerBiExport(HistoryEvents(store), exports, lambda: current_dimensions(store))
        first = await job.export(DAY, DAY)
        again = await job.export(DAY, DAY)
        assert sorted(await exports.list()) == sorted(first.files) == sorted(again.files)
        name = f"conversations/date={DAY.isoformat()}/conversations.parquet"
        conversations = pq.read_table(io.BytesIO(await exports.read(name)))
        queues = pq.read_table(io.BytesIO(await exports.read("queues/queues.parquet")))
        joined = conversations.join(queues, "queueId", join_type="inner")
        assert sorted(joined.column("conversationId").to_pylist()) == ["c-1", "c-2", "c-3", "c-4"]
    finally:
        await exports.close()


async def test_a_conversation_that_crossed_midnight_is_exported_whole_from_the_history(
    runtime: Runtime,
) -> None:
    """Read from the history alone (no outbox document behind it): the close's day holds the row,
    with the escalation and acceptance of the day before (the export's lookback)."""
    from shared.history.api import parse_envelope, record
    from tests.history.support import envelope

    before = DAY - timedelta(days=1)
    night = f"{before.isoformat()}T23:59:50.000Z"
    accepted = f"{DAY.isoformat()}T00:00:02.000Z"
    closed = f"{DAY.isoformat()}T00:05:02.000Z"
    for event in (
        envelope(
            "conversation.waiting",
            "c-9",
            1,
            night,
            queueId="general",
            queuedAt=night,
            first=True,
            escalatedAt=night,
            serviceLevelSeconds=20,
            firstQueueId="general",
        ),
        envelope(
            "conversation.accepted",
            "c-9",
            3,
            accepted,
            agentId="a-1",
            queueId="general",
            first=True,
            acceptedAt=accepted,
            firstWaitSeconds=12.0,
            serviceLevelSeconds=20,
            firstQueueId="general",
        ),
        envelope(
            "conversation.closed",
            "c-9",
            5,
            closed,
            queueId="general",
            agentId="a-1",
            handled=True,
            activeSeconds=240.0,
            wrapupSeconds=60.0,
            endReason="completed",
            closedAt=closed,
        ),
    ):
        assert await record(runtime.store, parse_envelope(event))
        assert not await record(runtime.store, parse_envelope(event)), "filed once"

    await export_days(runtime, before, DAY)
    rows = read(runtime.settings.data_dir / "exports", "conversations").to_pylist()
    assert [(r["conversationId"], r["dateKey"]) for r in rows] == [("c-9", DAY)]
    row = rows[0]
    assert row["escalatedAt"] == datetime.fromisoformat(night.replace("Z", "")), "from the day before"
    assert (row["firstWaitSeconds"], row["withinServiceLevel"], row["handleSeconds"]) == (12.0, True, 300.0)


async def test_the_nightly_timer_exports_yesterday(runtime: Runtime, clock: ManualClock) -> None:
    from azure.functions.timer import TimerRequest

    from functions.exports import NIGHTLY

    await known_day(runtime, clock)
    await file_history(runtime)
    clock.set(datetime(DAY.year, DAY.month, DAY.day, 2, 30, tzinfo=UTC) + timedelta(days=1))
    assert NIGHTLY == "0 30 2 * * *"
    await registered_functions()["power_bi_export"].get_user_function()(TimerRequest(past_due=False))
    root = runtime.settings.data_dir / "exports"
    assert (root / f"conversations/date={DAY.isoformat()}/conversations.parquet").is_file()
    assert read(root, "conversations").num_rows == 4
    assert not (root / f"conversations/date={(DAY + timedelta(days=1)).isoformat()}").exists()
