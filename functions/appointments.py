"""Appointments: patients book, move and cancel their own; agents and supervisors act for any
patient (recording the conversation they booked in) and check patients in.

Models and the scheduling service are imported inside the handlers (see functions/patients.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow
from shared.web.headers import IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, LOCATION

if TYPE_CHECKING:
    from shared.scheduling.api import AppointmentDocument, Scheduling

bp = func.Blueprint()
api = Api(bp, tag="scheduling")

APPOINTMENT = "shared.scheduling.model:Appointment"
STAFF = (Role.AGENT, Role.SUPERVISOR)
OWNER_OR_STAFF = allow(Role.PATIENT, *STAFF)


def _scheduling(call: Call) -> Scheduling:
    from shared.scheduling.api import Scheduling

    return Scheduling(call.runtime.store, call.runtime.bus, call.runtime.clock)


def _reply(item: AppointmentDocument, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """An appointment with its ETag (send it back in `If-Match` on reschedule, cancel, status)."""
    from shared.scheduling.api import appointment_etag, appointment_view

    return Reply(
        body=appointment_view(item),
        status=status,
        headers={**(headers or {}), "ETag": appointment_etag(item)},
    )


@api.route(
    "appointments",
    "POST",
    access=OWNER_OR_STAFF,
    summary="Book a slot",
    body="shared.scheduling.model:BookingRequest",
    response=APPOINTMENT,
    status=201,
    errors=(404, 409, 422, 503),
    headers=(IDEMPOTENCY_KEY,),
    response_headers=(LOCATION, IDEMPOTENT_REPLAYED),
    etag=True,
)
async def book_appointment(call: Call) -> Reply:
    """A patient books for themselves (`patientId` may be left out); staff name the patient and may
    pass `conversationId`. 409 when the slot is taken, not on the provider's grid, or outside the
    booking rules. With an `Idempotency-Key` header (kept 24 h) a retry answers the same
    appointment (`Idempotent-Replayed: true`); a key reused for another request is 409."""
    booked = await _scheduling(call).book(
        call.user,
        call.body,
        idempotency_key=call.header("idempotency-key"),
        correlation_id=call.correlation_id,
    )
    headers = {"Location": f"/api/appointments/{booked.item.id}"}
    if booked.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _reply(booked.item, 201, headers)


@api.route(
    "appointments/{appointmentId}",
    "GET",
    access=OWNER_OR_STAFF,
    summary="Read an appointment",
    response=APPOINTMENT,
    errors=(404,),
    etag=True,
)
async def get_appointment(call: Call) -> Reply:
    """A patient reads only their own appointments (another's answers 404). Audited."""
    item = await _scheduling(call).read(call.user, call.route("appointmentId"), call.correlation_id)
    return _reply(item)


@api.route(
    "appointments/{appointmentId}/reschedule",
    "POST",
    access=OWNER_OR_STAFF,
    summary="Move a booked appointment to another slot of the same provider",
    body="shared.scheduling.model:RescheduleRequest",
    response=APPOINTMENT,
    errors=(404, 409, 503),
    if_match=True,
)
async def reschedule_appointment(call: Call) -> Reply:
    """The new slot is taken before the old one is released: if it is not free the answer is 409
    and the booking is unchanged. Moving to the start it already has is a no-op (safe to retry).
    With `If-Match`: 412 if the appointment changed since you read it (not for that no-op)."""
    item = await _scheduling(call).reschedule(
        call.user, call.route("appointmentId"), call.body.start, call.correlation_id, if_match=call.if_match
    )
    return _reply(item)


@api.route(
    "appointments/{appointmentId}/cancel",
    "POST",
    access=OWNER_OR_STAFF,
    summary="Cancel an appointment and free its slot",
    response=APPOINTMENT,
    errors=(404, 409, 503),
    if_match=True,
)
async def cancel_appointment(call: Call) -> Reply:
    """Cancelling a cancelled appointment answers it again (safe to retry); other terminal
    statuses are 409. `If-Match` as for a reschedule."""
    item = await _scheduling(call).cancel(
        call.user, call.route("appointmentId"), call.correlation_id, if_match=call.if_match
    )
    return _reply(item)


@api.route(
    "appointments/{appointmentId}/status",
    "POST",
    access=allow(*STAFF),
    summary="Mark an appointment arrived, fulfilled or no-show",
    body="shared.scheduling.model:StatusRequest",
    response=APPOINTMENT,
    errors=(404, 409, 503),
    if_match=True,
)
async def set_appointment_status(call: Call) -> Reply:
    """booked → arrived | noshow (not before its start) | fulfilled; arrived → fulfilled. Anything
    else is 409; setting the status it already has is a no-op. The slot stays taken. `If-Match`
    as for a reschedule."""
    item = await _scheduling(call).set_status(
        call.user, call.route("appointmentId"), call.body.status, call.correlation_id, if_match=call.if_match
    )
    return _reply(item)


@api.route(
    "me/appointments",
    "GET",
    access=allow(Role.PATIENT),
    summary="My appointments, by start",
    query="shared.scheduling.model:AppointmentListQuery",
    response="shared.scheduling.model:AppointmentList",
)
async def my_appointments(call: Call) -> Reply:
    """Every status, ordered by start; paged with `limit` and `continuationToken` (a page may
    hold fewer items than asked: only a missing token means the end). Audited."""
    from shared.scheduling.api import patient_appointments

    items, token = await patient_appointments(
        call.runtime.store,
        call.runtime.clock,
        call.user,
        call.own_patient_id(),
        call.query.limit,
        call.query.continuationToken,
        resource="me/appointments",
        correlation_id=call.correlation_id,
    )
    return _list(items, token)


@api.route(
    "appointments",
    "GET",
    access=allow(*STAFF),
    summary="A patient's appointments, or a provider's day, by start",
    query="shared.scheduling.model:AppointmentSearch",
    response="shared.scheduling.model:AppointmentList",
    errors=(404,),
)
async def search_appointments(call: Call) -> Reply:
    """`?patientId=` (every status), or `?providerId=&date=` (the date on the provider's wall
    clock; 404 for an unknown provider); exactly one of the two. Paged with `maxItems` and
    `continuationToken`; a page may hold fewer items than asked, only the token says more.
    Audited per patient read. Patients use `GET /api/me/appointments`."""
    from shared.scheduling import api as schedule_lists

    query = call.query
    if query.patientId is not None:
        items, token = await schedule_lists.patient_appointments(
            call.runtime.store,
            call.runtime.clock,
            call.user,
            query.patientId,
            query.maxItems,
            query.continuationToken,
            resource=f"patients/{query.patientId}/appointments",
            correlation_id=call.correlation_id,
        )
    else:
        items, token = await schedule_lists.provider_day(
            call.runtime.store,
            call.runtime.clock,
            call.user,
            query.providerId,
            query.day,
            query.maxItems,
            query.continuationToken,
            correlation_id=call.correlation_id,
        )
    return _list(items, token)


def _list(items: list[AppointmentDocument], token: str | None) -> Reply:
    from shared.scheduling.api import AppointmentList, appointment_view

    return Reply(body=AppointmentList(items=[appointment_view(i) for i in items], continuationToken=token))
