"""FHIR R4 read views of scheduling: Appointment by id and a Slot search, as `application/fhir+json`.

The resources are built as plain JSON from the same documents the JSON API serves; no FHIR model
library is loaded in production (the tests validate the output with `fhir.resources`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

if TYPE_CHECKING:
    from shared.scheduling.api import Scheduling

bp = func.Blueprint()
api = Api(bp, tag="fhir")

FHIR_JSON = "application/fhir+json"


def _scheduling(call: Call) -> Scheduling:
    from shared.scheduling.api import Scheduling

    return Scheduling(call.runtime.store, call.runtime.bus, call.runtime.clock)


def _base_url(call: Call) -> str:
    url = call.request.url
    return url[: url.index("/fhir/") + len("/fhir")] if "/fhir/" in url else "urn:psc:fhir"


@api.route(
    "fhir/Appointment/{appointmentId}",
    "GET",
    access=allow(Role.PATIENT, Role.AGENT, Role.SUPERVISOR),
    summary="An appointment as a FHIR R4 Appointment",
    response="shared.scheduling.model:FhirAppointment",
    media_type=FHIR_JSON,
    errors=(404,),
    etag=True,
)
async def fhir_appointment(call: Call) -> Reply:
    """Same access as `GET /api/appointments/{id}`: a patient sees only their own (404 otherwise).
    The `ETag` is the appointment's own, as `GET /api/appointments/{id}` gives it: send it in
    `If-Match` to reschedule, cancel or set the status."""
    from shared.scheduling.api import appointment_etag
    from shared.scheduling.api import fhir_appointment as to_fhir

    item = await _scheduling(call).read(call.user, call.route("appointmentId"), call.correlation_id)
    return Reply(body=to_fhir(item.body()), headers={"ETag": appointment_etag(item)})


@api.route(
    "fhir/Slot",
    "GET",
    access=allow(*Role),
    summary="FHIR R4 Slot search (searchset Bundle) for one schedule (provider) and day",
    query="shared.scheduling.model:FhirSlotQuery",
    response="shared.scheduling.model:FhirBundle",
    media_type=FHIR_JSON,
    errors=(404,),
)
async def fhir_slots(call: Call) -> Reply:
    """`schedule=Schedule/<providerId>`, `start=<date>` (the provider's local day) or
    `start=ge<instant>` (24 hours from it), optional `status=free|busy`. Free slots are the
    bookable ones (booking rules applied); busy ones are the taken slots."""
    from shared.scheduling.api import fhir_searchset, fhir_slot

    query = call.query
    free, taken = await _scheduling(call).slot_states(query.schedule, query.window())
    resources = [(s, e, "free") for s, e in free] + [(t.start, t.end, "busy") for t in taken]
    resources.sort(key=lambda r: r[0])
    chosen = [
        fhir_slot(query.schedule, s, e, status)
        for s, e, status in resources
        if query.status in (None, status)
    ]
    return Reply(body=fhir_searchset(chosen, _base_url(call)))
