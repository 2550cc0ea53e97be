"""World requests for issue 14's routes (follow-ups), in order: writes before reads."""

from __future__ import annotations

from typing import Any

from tests.api.world import World

Requests = dict[str, list[tuple[str | None, dict[str, Any]]]]


def issue_14_requests(world: World) -> Requests:
    del world  # the policies need nothing the world seeds
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
    }
