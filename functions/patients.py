"""Patient registry endpoints: a patient's own profile, and the staff view of any patient.

The service and its models are imported inside the handlers: the worker imports every function
module to index it, and these load with the first patient request instead (see shared/web/api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow
from shared.web.headers import ETAG, IF_MATCH

if TYPE_CHECKING:
    from shared.patients.api import PatientProfile, PatientRecord, PatientRegistry, Stored

PROFILE = "shared.patients.model:PatientProfile"
RECORD = "shared.patients.model:PatientRecord"

bp = func.Blueprint()
api = Api(bp, tag="patients")

STAFF = (Role.AGENT, Role.SUPERVISOR, Role.ADMINISTRATOR)


def _registry(call: Call) -> PatientRegistry:
    from shared.patients.api import PatientRegistry

    return PatientRegistry(call.runtime.store, call.runtime.clock)


def _reply(stored: Stored, body: PatientProfile | PatientRecord) -> Reply:
    return Reply(body=body, status=201 if stored.created else 200, headers={"ETag": stored.etag})


@api.route(
    "me/profile",
    "GET",
    access=allow(Role.PATIENT),
    summary="Read my profile",
    response=PROFILE,
    errors=(404,),
    response_headers=(ETAG,),
    etag=True,
)
async def get_my_profile(call: Call) -> Reply:
    """The profile of the patient your sign-in is linked to, with its `ETag`. Audited."""
    from shared.patients.api import profile_of

    stored = await _registry(call).read(call.user, call.own_patient_id(), call.correlation_id)
    return _reply(stored, profile_of(stored.item))


@api.route(
    "me/profile",
    "PUT",
    access=allow(Role.PATIENT),
    summary="Create or replace my profile",
    body=PROFILE,
    response=PROFILE,
    errors=(412,),
    also=((201, "Created"),),
    headers=(IF_MATCH,),
    response_headers=(ETAG,),
    if_match=True,
)
async def put_my_profile(call: Call) -> Reply:
    """Send `If-Match` with the ETag you read to avoid overwriting a concurrent change (412)."""
    from shared.patients.api import profile_changes, profile_of

    stored = await _registry(call).write(
        call.user,
        call.own_patient_id(),
        profile_changes(call.body),
        if_match=call.if_match,
        correlation_id=call.correlation_id,
    )
    return _reply(stored, profile_of(stored.item))


@api.route(
    "patients/{patientId}",
    "GET",
    access=allow(*STAFF, Role.PATIENT, patient="patientId"),
    summary="Read a patient (clinical fields only for ClinicalUser)",
    response=RECORD,
    errors=(404,),
    response_headers=(ETAG,),
    etag=True,
)
async def get_patient(call: Call) -> Reply:
    """Staff read any patient; a patient only themselves (another id answers 404). Clinical
    fields (dateOfBirth, clinicalNotes) only for ClinicalUser. With its `ETag`. Audited."""
    from shared.patients.api import record_of

    stored = await _registry(call).read(call.user, call.route("patientId"), call.correlation_id)
    return _reply(stored, record_of(stored.item, clinical=call.user.is_clinical))


@api.route(
    "patients/{patientId}",
    "PUT",
    access=allow(*STAFF),
    summary="Create or replace a patient (clinical fields only for ClinicalUser)",
    body=RECORD,
    response=RECORD,
    errors=(412,),
    also=((201, "Created"),),
    headers=(IF_MATCH,),
    response_headers=(ETAG,),
    if_match=True,
)
async def put_patient(call: Call) -> Reply:
    """Profile fields are replaced; clinical fields (dateOfBirth, clinicalNotes) change only when
    sent, and sending them needs ClinicalUser (403 otherwise)."""
    from shared.patients.api import record_changes, record_of

    clinical = call.user.is_clinical
    changes = record_changes(call.body, clinical=clinical)
    stored = await _registry(call).write(
        call.user,
        call.route("patientId"),
        changes,
        if_match=call.if_match,
        correlation_id=call.correlation_id,
    )
    return _reply(stored, record_of(stored.item, clinical=clinical))
