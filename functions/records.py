"""Record hygiene: merging a provisional patient record into the registered patient, and a
patient's access log from the audit trail.

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

bp = func.Blueprint()
api = Api(bp, tag="records")


@api.route(
    "patients/{patientId}/merge",
    "POST",
    access=allow(Role.AGENT, Role.SUPERVISOR),
    summary="Merge a provisional record into this patient",
    body="shared.workspace.merge:MergeRequest",
    response="shared.workspace.merge:MergeResult",
    errors=(404, 409, 422),
)
async def merge_patient(call: Call) -> Reply:
    """`from` is a provisional record (made by a bot escalation that matched nobody). Its
    appointments, conversations and audit trail move under this patient, sign-in links follow,
    and the provisional record keeps pointing here (`mergedInto`). Done once: the same merge
    again changes nothing (`alreadyMerged`); one cut short is finished by merging again
    (`pendingConversations`). Audited on both records."""
    from shared.workspace.api import merge

    result = await merge(
        call.runtime.store,
        call.runtime.clock,
        call.user,
        call.route("patientId"),
        call.body.from_,
        call.correlation_id,
    )
    return Reply(body=result)


@api.route(
    "patients/{patientId}/access-log",
    "GET",
    access=allow(Role.ADMINISTRATOR),
    summary="Who read or changed this patient's record",
    query="shared.audit.access_log:AccessLogQuery",
    response="shared.audit.access_log:AccessLog",
)
async def access_log(call: Call) -> Reply:
    """From the audit trail, newest first: who (staff id, patient, bot), when, which operation
    and resource, and the outcome, between `from` (inclusive) and `to` (exclusive); paged with
    `maxItems` and `continuationToken`. Records copied from a merged provisional record say so
    (`mergedFrom`). One partition read; this read is itself audited."""
    from shared.audit.api import access_log as read_log
    from shared.audit.api import record_access

    query = call.query
    patient_id = call.route("patientId")
    log = await read_log(
        call.runtime.store,
        patient_id,
        query.from_,
        query.to,
        max_items=query.maxItems,
        token=query.continuationToken,
    )
    await record_access(
        call.runtime.store,
        call.runtime.clock,
        actor=call.user,
        action="read",
        resource=f"patients/{patient_id}/access-log",
        patient_id=patient_id,
        correlation_id=call.correlation_id,
    )
    return Reply(body=log)
