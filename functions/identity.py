"""Sign-in links and identity: who a staff member is to the API, and how a patient who signs in
with the patients' External ID tenant is linked to their record (a one-time code from staff).

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

if TYPE_CHECKING:
    from shared.patients.api import PatientLinks

bp = func.Blueprint()
api = Api(bp, tag="identity")

M = "shared.patients.identity:"
# Every staff role: anyone an administrator might register as an agent can ask for their id.
STAFF = (
    Role.AGENT,
    Role.SUPERVISOR,
    Role.ADMINISTRATOR,
    Role.KNOWLEDGE_MANAGER,
    Role.CLINICAL_USER,
    Role.INTEGRATION_ADMIN,
)


def _links(call: Call) -> PatientLinks:
    from shared.patients.api import PatientLinks

    return PatientLinks(call.runtime.store, call.runtime.clock)


@api.route(
    "agents/me",
    "GET",
    access=allow(*STAFF),
    summary="Who I am, and whether I am a registered agent",
    response="shared.routing.model:Me",
)
async def who_am_i(call: Call) -> Reply:
    """`id` is what an administrator registers you under (`PUT /api/manage/agents/{agentId}`):
    your Entra object id (`oid`), or `sub` in dev mode."""
    from shared.kernel.errors import NotFound
    from shared.routing.api import Me, RoutingDirectory

    user = call.user
    try:
        await RoutingDirectory(call.runtime.store).agent_doc(user.subject)
        registered = True
    except NotFound:
        registered = False
    return Reply(body=Me(id=user.subject, name=user.name, roles=sorted(user.roles), registered=registered))


@api.route(
    "patients/{patientId}/link-codes",
    "POST",
    access=allow(Role.AGENT, Role.ADMINISTRATOR),
    summary="Issue a one-time code that links a patient's sign-in to this record",
    response=M + "LinkCode",
    status=201,
    errors=(404,),
)
async def create_link_code(call: Call) -> Reply:
    """Give the code to the patient (in person, by phone): they redeem it once, within 24 hours,
    with `POST /api/me/link`. Only a hash is stored; the code cannot be shown again."""
    from shared.patients.api import LinkCode

    issued = await _links(call).create_code(call.user, call.route("patientId"), call.correlation_id)
    return Reply(body=LinkCode(code=issued.code, expiresAt=issued.expires_at), status=201)


@api.route(
    "me/link",
    "POST",
    access=allow(Role.PATIENT, unlinked_patients=True),
    summary="Link my sign-in to my patient record with a code from the service center",
    body=M + "LinkRequest",
    response=M + "Link",
    errors=(409, 429),
)
async def link_me(call: Call) -> Reply:
    """A wrong, used or expired code is 400 `invalid-link-code`; after 5 wrong codes in an hour
    this sign-in gets 429 with `Retry-After`. Redeeming again with the same code is harmless;
    a sign-in already linked to another record gets 409."""
    from shared.patients.api import Link

    patient_id = await _links(call).redeem(call.user, call.body.code, call.correlation_id)
    return Reply(body=Link(patientId=patient_id))
