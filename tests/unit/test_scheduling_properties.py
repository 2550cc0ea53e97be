"""Property-based tests: over random calendars (zones with DST, odd offsets, half-hour shifts) the
slot grid is sane, and over random sequences of bookings, reschedules, cancellations and check-ins
(some run concurrently, some sending an If-Match that may be stale, some after a hold's time ran
out) on the real service and embedded store, no slot is ever held twice and every booked
appointment lies inside the provider's hours."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.auth.principal import Principal
from shared.kernel.catalog import CONTAINERS
from shared.kernel.clock import ManualClock
from shared.kernel.documents import Query
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.etags import IfMatch
from shared.kernel.messages import OutgoingMessage
from shared.kernel.times import parse_stamp
from shared.scheduling.booking import Scheduling, appointment_etag
from shared.scheduling.model import WEEKDAYS, BookingRequest, Calendar, Provider

ZONES = [
    "Europe/Warsaw",
    "America/New_York",
    "Australia/Sydney",  # southern hemisphere: the changes run the other way
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Asia/Kathmandu",  # +05:45
    "UTC",
]
SLOT_MINUTES = [10, 15, 20, 30, 45, 60, 90]
# Days around the 2026 transitions of the zones above, plus ordinary ones.
DAYS = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 6, 15),
]


@st.composite
def day_hours(draw: Any) -> list[list[str]]:
    """Up to three non-overlapping ranges on a 15-minute raster, night hours included."""
    cuts = sorted(draw(st.sets(st.integers(0, 96), min_size=0, max_size=6)))
    if len(cuts) % 2:
        cuts = cuts[:-1]
    return [
        [f"{a * 15 // 60:02d}:{a * 15 % 60:02d}", f"{b * 15 // 60:02d}:{b * 15 % 60:02d}"]
        for a, b in zip(cuts[::2], cuts[1::2], strict=True)
    ]


@st.composite
def providers(draw: Any) -> Provider:
    weekly = {day: draw(day_hours()) for day in WEEKDAYS if draw(st.booleans())}
    exceptions = [
        {"date": day.isoformat(), "hours": draw(day_hours())}
        for day in draw(st.sets(st.sampled_from(DAYS), max_size=2))
    ]
    return Provider.model_validate(
        {
            "name": "p",
            "specialty": "s",
            "timeZone": draw(st.sampled_from(ZONES)),
            "slotMinutes": draw(st.sampled_from(SLOT_MINUTES)),
            "weeklyHours": weekly,
            "exceptions": exceptions,
            "bookingRules": {"maxDaysAhead": 400, "minNoticeMinutes": 0},
        }
    )


@st.composite
def open_providers(draw: Any) -> Provider:
    """Providers open most of every day (some days with random hours), so most bookings and
    moves land on real slots and collide; zones and slot lengths as in `providers`."""
    data = draw(providers()).model_dump(mode="json")
    data["weeklyHours"] = {
        day: (draw(day_hours()) if draw(st.booleans()) else []) or [["06:00", "20:00"]] for day in WEEKDAYS
    }
    return Provider.model_validate(data)


def inside_hours(calendar: Calendar, start: datetime, end: datetime) -> bool:
    """The slot's local wall start is a grid point of a range of its local day, and it lasts
    exactly one slot."""
    local = start.astimezone(calendar.zone)
    minute = local.hour * 60 + local.minute
    step = int(calendar.slot.total_seconds() // 60)
    if end - start != calendar.slot:
        return False
    return any(
        first <= minute and minute + step <= last and (minute - first) % step == 0
        for first, last in calendar.hours_on(local.date())
    )


@settings(max_examples=150, deadline=None)
@given(provider=providers(), day=st.sampled_from(DAYS))
def test_the_grid_is_ordered_disjoint_and_inside_the_hours(provider: Provider, day: date) -> None:
    calendar = Calendar.of(provider)
    slots = list(calendar.slots_on(day))
    for start, end in slots:
        assert start.tzinfo is UTC
        assert inside_hours(calendar, start, end)
        assert calendar.local_date(start) == day
        assert calendar.slot_at(start) == (start, end)
    for (_, end), (start, _) in itertools.pairwise(slots):
        assert end <= start
    # Every grid point whose wall-clock minutes all exist is offered exactly once.
    step = int(calendar.slot.total_seconds() // 60)
    expected = 0
    for first, last in calendar.hours_on(day):
        for minute in range(first, last - step + 1, step):
            if all(calendar.resolve(day, m) is not None for m in range(minute, minute + step)):
                expected += 1
    assert len(slots) == expected == len({s for s, _ in slots})


class ListBus:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send(self, queue: str, message: OutgoingMessage) -> None:
        self.sent.append(message)


AGENT = Principal(subject="agent-1", name=None, roles=frozenset({"Agent"}))

operations = st.lists(
    st.tuples(
        st.sampled_from(["book", "book", "reschedule", "reschedule", "cancel", "status", "tick"]),
        st.integers(0, 30),  # candidate start / appointment index
        st.integers(0, 30),  # candidate start for a reschedule; odd: send the ETag seen at booking
    ),
    min_size=4,
    max_size=24,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider=open_providers(), ops=operations, concurrency=st.sampled_from([1, 4]))
def test_no_slot_is_ever_booked_twice(
    provider: Provider, ops: list[tuple[str, int, int]], concurrency: int
) -> None:
    asyncio.run(_run_operations(provider, ops, concurrency))


async def _run_operations(provider: Provider, ops: list[tuple[str, int, int]], concurrency: int) -> None:
    calendar = Calendar.of(provider)
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    # Candidates: grid slots of some days (so bookings collide), plus off-grid instants.
    candidates: list[datetime] = []
    for day in DAYS[:4]:
        candidates += [s for s, _ in calendar.slots_on(day)][:5]
        candidates.append(datetime.combine(day, time(10, 7), tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteDocumentStore(Path(tmp) / "store.sqlite3", CONTAINERS, clock)
        try:
            service = Scheduling(store, ListBus(), clock)  # type: ignore[arg-type]
            await service.put_provider(AGENT, "dr-p", provider, "corr-property-1")
            for n in range(len(ops)):  # bookings name existing patients
                await store.container("patients").upsert({"id": f"p-{n}", "type": "patient", "name": "P"})
            booked_ids: list[str] = []
            # The ETag a client saw when the appointment was booked: stale once it changes.
            seen: dict[str, str] = {}

            def condition(appointment_id: str, b: int) -> IfMatch | None:
                return IfMatch.parse(seen[appointment_id]) if b % 2 and appointment_id in seen else None

            async def run(op: tuple[str, int, int], n: int) -> None:
                kind, a, b = op
                try:
                    if kind == "tick":
                        clock.advance(seconds=61)  # past any hold's time: stale holds are reclaimed
                    elif kind == "book":
                        request = BookingRequest(
                            providerId="dr-p",
                            start=candidates[a % len(candidates)],
                            patientId=f"p-{n}",
                            reason="r",
                        )
                        result = await service.book(
                            AGENT, request, idempotency_key=None, correlation_id="corr-property-1"
                        )
                        booked_ids.append(result.item["id"])
                        seen[result.item["id"]] = appointment_etag(result.item)
                    elif booked_ids:
                        target_id = booked_ids[a % len(booked_ids)]
                        if_match = condition(target_id, b)
                        if kind == "reschedule":
                            target = candidates[b % len(candidates)]
                            await service.reschedule(
                                AGENT, target_id, target, "corr-property-1", if_match=if_match
                            )
                        elif kind == "cancel":
                            await service.cancel(AGENT, target_id, "corr-property-1", if_match=if_match)
                        else:
                            status = ("arrived", "fulfilled", "noshow")[b % 3]
                            await service.set_status(
                                AGENT, target_id, status, "corr-property-1", if_match=if_match
                            )
                except (Conflict, NotFound, PreconditionFailed):
                    pass

            for i in range(0, len(ops), concurrency):
                await asyncio.gather(*(run(op, i + j) for j, op in enumerate(ops[i : i + concurrency])))

            appointments = [
                item
                for item in (
                    await store.container("appointments").query_cross_partition(Query(), max_items=10_000)
                ).items
                if item["type"] == "appointment"  # not the outbox's event documents beside them
            ]
            slots = (
                await store.container("slots").query(Query(), partition_key="dr-p", max_items=1000)
            ).items
        finally:
            await store.close()

    # Arrived, fulfilled and no-show appointments keep their slot, as booked ones do.
    booked = [a for a in appointments if a["status"] in ("booked", "arrived", "fulfilled", "noshow")]
    starts = Counter(a["start"] for a in booked)
    assert all(count == 1 for count in starts.values()), starts
    for appointment in booked:
        start, end = parse_stamp(appointment["start"]), parse_stamp(appointment["end"])
        assert inside_hours(calendar, start, end), appointment
        assert "pending" not in appointment
    # Each booked appointment owns exactly the slot document at its start, and no slot document
    # is left without an appointment standing on it (sequential runs cannot leak holds).
    owner = {s["start"]: s["appointmentId"] for s in slots}
    assert len(owner) == len(slots)
    for appointment in booked:
        assert owner[appointment["start"]] == appointment["id"]
    assert len(slots) == len(booked)
    assert all(s["status"] == "busy" for s in slots)
    assert all(
        parse_stamp(s["end"]) - parse_stamp(s["start"]) == timedelta(minutes=provider.slotMinutes)
        for s in slots
    )
