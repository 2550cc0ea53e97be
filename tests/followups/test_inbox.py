"""The portal inbox (patient-scoped) and the dev outbox (administrators, dev mode only)."""

from __future__ import annotations

from pathlib import Path

from shared.kernel.clock import ManualClock
from shared.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import invoke, make_settings, stored_items, token
from tests.followups.harness import (
    ADMIN,
    PATIENT,
    PATIENT_DOC,
    SETTINGS,
    book,
    deliver_new,
    fu_runtime,
    pump,
    world,
)

__all__ = ["fu_runtime", "world"]

OTHER_PATIENT = token("Patient", sub="patient-sub-2", patient_id="p-2")
AGENT = token("Agent", sub="agent-1")


async def portal_patient(runtime: Runtime) -> None:
    await runtime.store.container("patients").upsert(
        {**PATIENT_DOC, "preferredChannel": "portal", "consent": {"sms": False, "email": False}}
    )


async def test_a_patient_reads_their_inbox_and_marks_a_message_read(world: Runtime) -> None:
    await portal_patient(world)
    appointment_id = await book()
    await deliver_new(world)
    await pump(world)
    inbox = await invoke("my_inbox", bearer=PATIENT)
    assert inbox.status == 200
    [item] = inbox.json["items"]
    assert (item["purpose"], item["subjectId"]) == ("confirmation", appointment_id)
    assert "readAt" not in item
    read = await invoke("read_inbox_item", method="POST", bearer=PATIENT, route_params={"itemId": item["id"]})
    assert read.status == 200
    assert read.json["readAt"]
    again = await invoke(
        "read_inbox_item", method="POST", bearer=PATIENT, route_params={"itemId": item["id"]}
    )
    assert again.json["readAt"] == read.json["readAt"]
    audit = [a["resource"] for a in await stored_items(world, "audit") if a.get("patientId") == "p-1"]
    assert "me/inbox" in audit


async def test_another_patients_message_is_404_and_their_inbox_is_their_own(world: Runtime) -> None:
    await portal_patient(world)
    await book()
    await deliver_new(world)
    await pump(world)
    [item] = (await invoke("my_inbox", bearer=PATIENT)).json["items"]
    other = await invoke(
        "read_inbox_item", method="POST", bearer=OTHER_PATIENT, route_params={"itemId": item["id"]}
    )
    assert other.status == 404
    assert (await invoke("my_inbox", bearer=OTHER_PATIENT)).json == {"items": []}
    unknown = await invoke("read_inbox_item", method="POST", bearer=PATIENT, route_params={"itemId": "n:x"})
    assert unknown.status == 404
    bad = await invoke("read_inbox_item", method="POST", bearer=PATIENT, route_params={"itemId": "a/b"})
    assert bad.status == 400


async def test_staff_have_no_inbox(world: Runtime) -> None:
    assert (await invoke("my_inbox", bearer=AGENT)).status == 403
    assert (
        await invoke("read_inbox_item", method="POST", bearer=ADMIN, route_params={"itemId": "inbox:x"})
    ).status == 403


async def test_the_dev_outbox_shows_what_would_have_been_sent_with_its_links(
    world: Runtime, clock: ManualClock
) -> None:
    from shared.kernel.times import parse_stamp

    appointment_id = await book()
    await deliver_new(world)
    await pump(world)
    clock.set(parse_stamp("2026-01-08T12:00:00.000Z"))
    await pump(world)
    answer = await invoke("dev_outbox", bearer=ADMIN, params={"patientId": "p-1"})
    assert answer.status == 200, answer.json
    items = answer.json["items"]
    assert [(i["purpose"], i["channel"], i["to"], i["subjectId"]) for i in items] == [
        ("confirmation", "sms", "+48601000001", appointment_id),
        ("reminder", "sms", "+48601000001", appointment_id),
    ]
    assert set(items[1]["links"]) == {"confirm", "cancel"}
    assert set(items[0]) == {
        "id",
        "patientId",
        "purpose",
        "subjectId",
        "channel",
        "to",
        "text",
        "links",
        "createdAt",
        "status",
    }


async def test_the_dev_outbox_is_for_administrators_and_checks_its_query(world: Runtime) -> None:
    assert (await invoke("dev_outbox", bearer=AGENT, params={"patientId": "p-1"})).status == 403
    assert (await invoke("dev_outbox", bearer=PATIENT, params={"patientId": "p-1"})).status == 403
    assert (await invoke("dev_outbox", bearer=ADMIN, params={})).status == 400
    assert (await invoke("dev_outbox", bearer=ADMIN, params={"patientId": "a/b"})).status == 400


async def test_the_dev_outbox_is_404_outside_dev_mode(tmp_path: Path, clock: ManualClock) -> None:
    settings = make_settings(tmp_path / "data", **SETTINGS)
    rt = await build_runtime(
        settings.model_copy(update={"notify": "acs", "acs_endpoint": "https://x.communication.azure.com"}),
        clock=clock,
    )
    with use_runtime(rt):
        answer = await invoke("dev_outbox", bearer=ADMIN, params={"patientId": "p-1"})
    await rt.close()
    assert answer.status == 404
