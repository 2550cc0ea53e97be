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
    from shared.kernel.times import parse_stamp
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
    }
