"""World requests for issue 14's routes (follow-ups), in order: writes before reads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.runtime import Runtime
from tests.api.world import LINK_SIGNING_KEY, World

Requests = dict[str, list[tuple[str | None, dict[str, Any]]]]


async def seed_followups(runtime: Runtime, world: World) -> None:
    """Link tokens of the `read` appointment as a reminder would carry them: one to look at, one
    to use (minted directly: the world does not run the follow-ups' queue)."""
    from shared.followups.links import Links
    from shared.kernel.catalog import APPOINTMENTS
    from shared.kernel.stored import Stored
    from shared.kernel.times import parse_stamp, stamp
    from shared.scheduling.api import AppointmentDocument

    appointment_id = world.appointments["read"]
    appointment = await Stored(runtime.store, APPOINTMENTS, AppointmentDocument).read(
        appointment_id, appointment_id
    )
    links = Links(runtime.store, LINK_SIGNING_KEY)
    now = runtime.clock.now()
    for use, kind in (("page", "cancel"), ("confirm", "confirm")):
        world.links[use] = await links.mint(
            kind,  # type: ignore[arg-type]
            notification_id=f"reminder:{appointment_id}:{appointment.version}:{use}",
            patient_id=appointment.patient_id or "",
            subject_id=appointment_id,
            version=appointment.version,
            expires=parse_stamp(appointment.start) + timedelta(0),
            now=now,
        )
    # A message in the demo patient's portal inbox.
    from shared.followups.documents import InboxItem

    inbox = InboxItem(
        id="inbox:confirmation:world:1",
        patient_id="p-demo-1",
        notification_id="confirmation:world:1",
        purpose="confirmation",
        subject_id=appointment_id,
        subject="Your appointment is booked",
        text="Booked: your appointment.",
        created_at=stamp(now),
    )
    world.links["inbox"] = inbox.id
    # Two surveys of the demo patient: one to look at, one to answer (its record as sent).
    from shared.followups.documents import NotificationRecord, record_id
    from shared.followups.partition import Partition

    partition = Partition(runtime.store)
    for use in ("survey-page", "survey-answer"):
        nid = f"survey:world-{use}"
        record = NotificationRecord(
            id=record_id(nid),
            patient_id="p-demo-1",
            notification_id=nid,
            purpose="survey",
            kind="survey",
            subject_id=f"world-{use}",
            occasion="once",
            status="sent",
            due=stamp(now),
            created_at=stamp(now),
            sent_at=stamp(now),
        )
        await partition.commit(await partition.ledger("p-demo-1"), [record, inbox])
        world.links[use] = await links.mint(
            "survey",
            notification_id=nid,
            patient_id="p-demo-1",
            subject_id=f"world-{use}",
            version=0,
            expires=now + timedelta(days=28),
            now=now,
        )


def issue_14_requests(world: World) -> Requests:
    return {
        "PUT /api/manage/reminder-policy": [
            (
                "Administrator",
                {
                    "body": {
                        "offsets": ["P2D", "PT2H"],
                        "channels": ["sms", "email", "portal"],
                        "quietHours": {"start": "21:00", "end": "08:00"},
                    }
                },
            )
        ],
        "GET /api/manage/reminder-policy": [("Supervisor", {})],
        "PUT /api/manage/survey-policy": [
            (
                "Administrator",
                {
                    "body": {
                        "afterConversation": {"enabled": True, "delay": "PT1H"},
                        "afterVisit": {"enabled": False, "delay": "P1D"},
                        "capDays": 30,
                    }
                },
            )
        ],
        "GET /api/manage/survey-policy": [("Administrator", {})],
        "GET /api/links/{token}": [(None, {"path_parameters": {"token": world.links["page"]}})],
        "POST /api/links/{token}": [(None, {"path_parameters": {"token": world.links["confirm"]}})],
        "GET /api/me/inbox": [("Patient", {})],
        "POST /api/me/inbox/{itemId}/read": [
            ("Patient", {"path_parameters": {"itemId": world.links["inbox"]}})
        ],
        "GET /api/dev/outbox": [("Administrator", {"query": {"patientId": "p-demo-1"}})],
        "GET /api/supervisor/surveys": [
            ("Supervisor", {"query": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}})
        ],
        "GET /api/surveys/{token}": [(None, {"path_parameters": {"token": world.links["survey-page"]}})],
        "POST /api/surveys/{token}": [
            (
                None,
                {
                    "path_parameters": {"token": world.links["survey-answer"]},
                    "body": {"csat": 5, "nps": 10, "comment": "Thank you."},
                },
            )
        ],
    }
