"""A reminder's one-use links, without sign-in: the page never acts, a POST acts once (then 409),
an expired link is 410, a forged or unknown one 404, a link of a changed appointment 409; uses are
audited, and two clicks at once act once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from shared.kernel.clock import ManualClock
from shared.kernel.times import parse_stamp
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, stored_items
from tests.followups.harness import (
    FRIDAY_1300,
    FRIDAY_1400,
    book,
    deliver_new,
    fu_runtime,
    ledger_events,
    outbox,
    pump,
    records,
    reschedule,
    world,
)

__all__ = ["fu_runtime", "world"]


async def reminder_links(
    runtime: Runtime, clock: ManualClock, start: str = FRIDAY_1300
) -> tuple[str, dict[str, str]]:
    appointment_id = await book(start)
    await deliver_new(runtime)
    await pump(runtime)
    clock.set(parse_stamp("2026-01-08T12:00:00.000Z"))
    await pump(runtime)
    reminder = [s for s in await outbox(runtime) if s["purpose"] == "reminder"][-1]
    return appointment_id, {k: v.rsplit("/", 1)[-1] for k, v in reminder["links"].items()}


async def page(token: str) -> Answer:
    return await invoke("link_page", route_params={"token": token})


async def use(token: str, body: bytes = b"", content_type: str | None = None) -> Answer:
    headers = {"Content-Type": content_type} if content_type else None
    return await invoke("use_link", method="POST", body=body, headers=headers, route_params={"token": token})


async def test_the_page_shows_a_button_and_never_acts(world: Runtime, clock: ManualClock) -> None:
    _, links = await reminder_links(world, clock)
    for _ in range(3):  # a mail scanner, a preview, the patient
        answer = await page(links["cancel"])
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "text/html"
        assert b'<form method="post"' in answer.body
        assert b"Anna" not in answer.body  # nothing about the patient
        assert "script-src" not in answer.headers["Content-Security-Policy"]
    assert all(s["status"] == "booked" for s in await stored_items(world, "appointments"))
    assert (await use(links["cancel"])).status == 200


async def test_confirm_acts_once_is_audited_and_answers_409_after(world: Runtime, clock: ManualClock) -> None:
    appointment_id, links = await reminder_links(world, clock)
    first = await use(links["confirm"], b"", "application/x-www-form-urlencoded")  # the page's form post
    assert first.status == 200, first.body
    assert b"confirmed" in first.body
    again = await use(links["confirm"])
    assert again.status == 409
    assert again.headers["Content-Type"] == "application/problem+json"
    assert (await page(links["confirm"])).status == 409
    reminder = next(r for r in (await records(world)).values() if r["occasion"] == "P1D")
    assert reminder["answer"] == "confirmed"
    answered = [e for e in await ledger_events(world) if e["eventType"] == "notification.answered"]
    assert [e["data"]["answer"] for e in answered] == ["confirmed"]
    audit = [a for a in await stored_items(world, "audit") if a["resource"].startswith("links/")]
    assert [(a["resource"], a["patientId"]) for a in audit] == [
        (f"links/confirm/appointments/{appointment_id}", "p-1")
    ]


async def test_cancel_cancels_the_appointment_and_its_confirmation_follows(
    world: Runtime, clock: ManualClock
) -> None:
    appointment_id, links = await reminder_links(world, clock)
    assert (await use(links["cancel"])).status == 200
    appointment = next(a for a in await stored_items(world, "appointments") if a["id"] == appointment_id)
    assert appointment["status"] == "cancelled"
    await deliver_new(world)
    await pump(world)
    confirmations = [s["text"].split(":")[0] for s in await outbox(world) if s["purpose"] == "confirmation"]
    assert confirmations == ["Booked", "Cancelled"]
    assert (await use(links["confirm"])).status == 409, "the appointment changed since the reminder"


async def test_two_clicks_at_once_act_once(world: Runtime, clock: ManualClock) -> None:
    _, links = await reminder_links(world, clock)
    answers = await asyncio.gather(use(links["cancel"]), use(links["cancel"]))
    assert sorted(a.status for a in answers) == [200, 409]


async def test_an_expired_link_is_410_and_a_forged_or_unknown_one_404(
    world: Runtime, clock: ManualClock
) -> None:
    _, links = await reminder_links(world, clock)
    token = links["confirm"]
    forged = ("A" if token[0] != "A" else "B") + token[1:]
    assert (await use(forged)).status == 404
    assert (await page("0123456789abcdef")).status == 404
    assert (await use("short")).status == 404
    bad = await use("a.b:c@d..")
    assert bad.status in (400, 404)
    clock.set(parse_stamp(FRIDAY_1300) + timedelta(seconds=1))
    assert (await use(token)).status == 410
    assert (await page(token)).status == 410


async def test_a_link_of_a_moved_appointment_is_409_and_stays_unused(
    world: Runtime, clock: ManualClock
) -> None:
    appointment_id, links = await reminder_links(world, clock)
    assert (await reschedule(appointment_id, FRIDAY_1400)).status == 200
    assert (await use(links["cancel"])).status == 409
    appointment = next(a for a in await stored_items(world, "appointments") if a["id"] == appointment_id)
    assert appointment["status"] == "booked"


async def test_a_body_other_than_empty_is_refused_and_nothing_happens(
    world: Runtime, clock: ManualClock
) -> None:
    _, links = await reminder_links(world, clock)
    answer = await use(links["cancel"], b'{"cancel": true}', "application/json")
    assert answer.status == 400
    assert all(s["status"] == "booked" for s in await stored_items(world, "appointments"))
    assert (await use(links["cancel"])).status == 200


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


async def confirmations(runtime: Runtime) -> list[dict[str, Any]]:
    return [s for s in await outbox(runtime) if s["purpose"] == "confirmation"]


async def test_a_confirmation_carries_the_signed_one_use_cancel_link_of_its_version(
    world: Runtime, clock: ManualClock
) -> None:
    """A booking's and a move's confirmations carry a cancel link minted as a reminder's (signed,
    one use, bound to the appointment's version): the booking's stops working once the appointment
    moved, the move's cancels once; the cancellation's confirmation carries no link."""
    appointment_id = await book()
    await deliver_new(world)
    await pump(world)
    [booked] = await confirmations(world)
    assert set(booked["links"]) == {"cancel"}  # an SMS: room for one link beside the appointment
    assert booked["links"]["cancel"].startswith("https://psc.example.org/api/links/")
    assert booked["links"]["cancel"] in booked["text"]
    assert (await page(token_of(booked["links"]["cancel"]))).status == 200
    assert (await reschedule(appointment_id, FRIDAY_1400)).status == 200
    await deliver_new(world)
    await pump(world)
    booked_again, moved = await confirmations(world)
    assert booked_again == booked
    assert (await use(token_of(booked["links"]["cancel"]))).status == 409, "the appointment moved since"
    assert (await use(token_of(moved["links"]["cancel"]))).status == 200
    appointment = next(a for a in await stored_items(world, "appointments") if a["id"] == appointment_id)
    assert appointment["status"] == "cancelled"
    assert (await use(token_of(moved["links"]["cancel"]))).status == 409
    await deliver_new(world)
    await pump(world)
    cancelled = (await confirmations(world))[-1]
    assert cancelled["text"].startswith("Cancelled")
    assert cancelled["links"] == {}
    audit = [a["resource"] for a in await stored_items(world, "audit") if a["resource"].startswith("links/")]
    assert audit == [f"links/cancel/appointments/{appointment_id}"]


async def test_an_e_mail_confirmation_also_offers_another_time_in_the_portal(world: Runtime) -> None:
    from tests.followups.harness import PATIENT_DOC

    await world.store.container("patients").upsert({**PATIENT_DOC, "preferredChannel": "email"})
    appointment_id = await book()
    await deliver_new(world)
    await pump(world)
    [booked] = await confirmations(world)
    assert booked["channel"] == "email"
    assert booked["links"]["reschedule"] == f"https://portal.example.org/appointments/{appointment_id}"
    assert set(booked["links"]) == {"cancel", "reschedule"}
    assert all(url in booked["text"] for url in booked["links"].values())
    assert (await page(token_of(booked["links"]["cancel"]))).status == 200
