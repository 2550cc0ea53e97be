"""The agent's workspace: agent scripts (Administrator writes; the assigned agent reads the one
for a conversation, filled in).

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

if TYPE_CHECKING:
    from shared.workspace.api import Scripts

bp = func.Blueprint()
api = Api(bp, tag="workspace")

M = "shared.workspace.model:"


def _scripts(call: Call) -> Scripts:
    from shared.workspace.api import Scripts

    return Scripts(call.runtime.store, call.runtime.clock)


@api.route(
    "manage/scripts/{scriptId}",
    "PUT",
    access=allow(Role.ADMINISTRATOR),
    summary="Create or replace an agent script",
    body=M + "ScriptRequest",
    response=M + "Script",
    also=((201, "Created"),),
    if_match=True,
)
async def put_script(call: Call) -> Reply:
    """Steps are `text` (placeholders `{patient.firstName}`, `{patient.name}`, `{agent.name}`,
    `{queue.name}`; anything else is refused), `action` (`open-booking`, `send-article` with
    `articleId`, `consult`) and `script` (another script's steps; it may be defined later). A
    change that would make scripts call themselves, directly or through others, is refused with
    the cycle named. Send `If-Match` with the ETag you read to avoid overwriting a change (412)."""
    from shared.kernel.etags import entity_tag
    from shared.workspace.api import script_view

    doc, created = await _scripts(call).put(
        call.user, call.route("scriptId"), call.body, if_match=call.if_match
    )
    return Reply(
        body=script_view(doc), status=201 if created else 200, headers={"ETag": entity_tag(doc.etag)}
    )


@api.route(
    "manage/scripts/{scriptId}",
    "GET",
    access=allow(Role.ADMINISTRATOR, Role.SUPERVISOR),
    summary="Read an agent script",
    response=M + "Script",
    errors=(404,),
    etag=True,
)
async def get_script(call: Call) -> Reply:
    """As written (sub-scripts not expanded, placeholders not filled)."""
    from shared.kernel.etags import entity_tag
    from shared.workspace.api import script_view

    doc = await _scripts(call).get(call.route("scriptId"))
    return Reply(body=script_view(doc), headers={"ETag": entity_tag(doc.etag)})


@api.route(
    "conversations/{conversationId}/script",
    "GET",
    access=allow(Role.AGENT),
    summary="The script for this conversation, filled in",
    response=M + "ConversationScript",
    errors=(404,),
)
async def conversation_script(call: Call) -> Reply:
    """For the assigned agent: the script whose `appliesTo` fits the conversation (most specific
    first, then lower priority, then id), sub-scripts expanded, placeholders filled from the patient
    record, the agent's directory entry and the queue. 404 when none applies. Audited."""
    script = await _scripts(call).for_conversation(
        call.user, call.route("conversationId"), call.correlation_id
    )
    return Reply(body=script)


@api.route(
    "patients/{patientId}/summary",
    "GET",
    access=allow(Role.AGENT, Role.SUPERVISOR, Role.PATIENT, patient="patientId"),
    summary="The unified patient view (clinical fields only for ClinicalUser)",
    response="shared.workspace.summary:PatientSummary",
    errors=(404,),
)
async def patient_summary(call: Call) -> Reply:
    """Profile and consent, the next and the last appointments (provider names, the provider's
    local times), open and recent conversations with their status, the last notifications sent
    (purpose, channel, status, sentAt, subject; never a text or an address) and survey answers
    (scores; the comment for Supervisors only). Clinical fields (dateOfBirth, clinicalNotes) only
    for ClinicalUser; a patient may read only their own (another id answers 404). Point reads and
    single-partition queries only. Audited."""
    from shared.workspace.api import patient_summary as summary

    view = await summary(
        call.runtime.store, call.runtime.clock, call.user, call.route("patientId"), call.correlation_id
    )
    return Reply(body=view)


@api.route(
    "me/summary",
    "GET",
    access=allow(Role.PATIENT),
    summary="My unified view: profile, appointments, conversations, notifications, surveys",
    response="shared.workspace.summary:PatientSummary",
    errors=(404,),
)
async def my_summary(call: Call) -> Reply:
    """The unified view of the patient your sign-in is linked to (no clinical fields, no
    agent-side fields of conversations, the survey scores without the comment). Audited."""
    from shared.workspace.api import patient_summary as summary

    view = await summary(
        call.runtime.store, call.runtime.clock, call.user, call.own_patient_id(), call.correlation_id
    )
    return Reply(body=view)
