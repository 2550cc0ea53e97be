"""The demo providers (`python -m devhost --demo`): four calendars in four time zones."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, timedelta
from typing import Any

from shared.kernel import lists
from shared.kernel.catalog import PROVIDERS
from shared.kernel.errors import (
    Conflict,
)
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.scheduling import index
from shared.scheduling.documents import ProviderDocument
from shared.scheduling.model import (
    Provider,
)

log = logging.getLogger("psc.scheduling")


# ---- demo data ----------------------------------------------------------------------------------

_WEEKDAYS_9_TO_5 = {d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}

DEMO_PROVIDERS: dict[str, dict[str, Any]] = {
    "dr-nowak": {
        "name": "Dr. Ewa Nowak (demo)",
        "specialty": "cardiology",
        "timeZone": "Europe/Warsaw",
        "slotMinutes": 30,
        "weeklyHours": {
            **{d: [["08:00", "12:00"], ["13:00", "16:00"]] for d in ("mon", "tue", "wed", "thu")},
            "fri": [["08:00", "13:00"]],
        },
        "exceptions": [
            {"date": "2026-12-24", "hours": []},
            {"date": "2026-12-31", "hours": [["08:00", "11:00"]]},
        ],
        "bookingRules": {"maxDaysAhead": 90, "minNoticeMinutes": 120},
    },
    "dr-carter": {
        "name": "Dr. Sam Carter (demo)",
        "specialty": "family-medicine",
        "timeZone": "America/New_York",
        "slotMinutes": 20,
        "weeklyHours": {**_WEEKDAYS_9_TO_5, "sat": [["09:00", "12:00"]]},
        "exceptions": [{"date": "2026-11-26", "hours": []}],
        "bookingRules": {"maxDaysAhead": 60, "minNoticeMinutes": 60},
    },
    "dr-sato": {
        "name": "Dr. Yui Sato (demo)",
        "specialty": "dermatology",
        "timeZone": "Asia/Tokyo",
        "slotMinutes": 15,
        "weeklyHours": _WEEKDAYS_9_TO_5,
        "exceptions": [],
        "bookingRules": {"maxDaysAhead": 30, "minNoticeMinutes": 240},
    },
    "dr-okafor": {
        "name": "Dr. Ada Okafor (demo)",
        "specialty": "family-medicine",
        "timeZone": "Europe/London",
        "slotMinutes": 30,
        "weeklyHours": {d: [["08:30", "12:30"], ["14:00", "18:00"]] for d in ("mon", "wed", "fri")},
        "exceptions": [],
        "bookingRules": {"maxDaysAhead": 120, "minNoticeMinutes": 0},
    },
}


async def seed_scheduling_demo(runtime: Any, base_url: str = "http://127.0.0.1:7071/api") -> list[str]:
    """Create the demo providers if absent (idempotent); lines for the dev host banner."""
    providers = Stored(runtime.store, PROVIDERS, ProviderDocument)
    now = stamp(runtime.clock.now())
    for provider_id, data in DEMO_PROVIDERS.items():
        body = Provider.model_validate(data).model_dump(mode="json")
        # Listed every time: a store seeded before provider lists existed gets its entries too.
        await lists.add(runtime.store, *index.provider_entries(provider_id, body["specialty"].casefold()))
        with contextlib.suppress(Conflict):  # already seeded (or edited since): leave it
            await providers.create(
                ProviderDocument.model_validate(
                    {
                        **body,
                        "id": provider_id,
                        "specialtyKey": body["specialty"].casefold(),
                        "createdAt": now,
                        "updatedAt": now,
                    }
                )
            )
    today = runtime.clock.now().astimezone(UTC).date()
    until = today + timedelta(days=7)
    return [
        "Scheduling demo: "
        + ", ".join(f"{pid} ({d['specialty']}, {d['timeZone']})" for pid, d in DEMO_PROVIDERS.items()),
        f'  curl -H "Authorization: Bearer $PATIENT_TOKEN" "{base_url}/providers?specialty=family-medicine"',
        f'  curl -H "Authorization: Bearer $PATIENT_TOKEN" '
        f'"{base_url}/providers/dr-nowak/slots?from={today}&to={until}"',
        f"  book one: POST {base_url}/appointments with providerId, start (a slot's start) and reason",
    ]
