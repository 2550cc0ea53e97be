"""Providers and their free slots: administrators keep the calendars, anyone signed in searches.

Models and the scheduling service are imported inside the handlers (see functions/patients.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow
from shared.web.headers import ETAG

if TYPE_CHECKING:
    from shared.scheduling.api import Scheduling

bp = func.Blueprint()
api = Api(bp, tag="scheduling")
# Provider ids become part of FHIR ids: an Id held to FHIR's alphabet (checked at the edge).
PROVIDER_ID = {"providerId": "shared.scheduling.model:check_provider_id"}

SIGNED_IN = tuple(Role)


def _scheduling(call: Call) -> Scheduling:
    from shared.scheduling.api import Scheduling

    return Scheduling(call.runtime.store, call.runtime.bus, call.runtime.clock)


@api.route(
    "manage/providers/{providerId}",
    "PUT",
    access=allow(Role.ADMINISTRATOR),
    summary="Create or replace a provider's calendar",
    body="shared.scheduling.model:Provider",
    response="shared.scheduling.model:ProviderView",
    params=PROVIDER_ID,
    also=((201, "Created"),),
    response_headers=(ETAG,),
    if_match=True,
)
async def put_provider(call: Call) -> Reply:
    """Weekly hours are wall-clock ranges in the provider's `timeZone`; an exception replaces one
    date's hours (`[]` closes it). Existing appointments keep their times. Send `If-Match` with
    the ETag you read to avoid overwriting a concurrent change (412)."""
    from shared.kernel.etags import stored_etag
    from shared.scheduling.api import provider_view

    stored, created = await _scheduling(call).put_provider(
        call.user, call.route("providerId"), call.body, call.correlation_id, if_match=call.if_match
    )
    return Reply(
        body=provider_view(stored), status=201 if created else 200, headers={"ETag": stored_etag(stored)}
    )


@api.route(
    "providers/{providerId}",
    "GET",
    access=allow(*SIGNED_IN),
    summary="Read a provider",
    response="shared.scheduling.model:ProviderView",
    errors=(404,),
    params=PROVIDER_ID,
    response_headers=(ETAG,),
)
async def get_provider(call: Call) -> Reply:
    """A provider's calendar (time zone, slot length, weekly hours, exceptions, booking rules),
    with its `ETag`."""
    from shared.kernel.etags import stored_etag
    from shared.scheduling.api import provider_view

    stored = await _scheduling(call).provider(call.route("providerId"))
    return Reply(body=provider_view(stored), headers={"ETag": stored_etag(stored)})


@api.route(
    "providers",
    "GET",
    access=allow(*SIGNED_IN),
    summary="List providers, optionally of one specialty",
    query="shared.scheduling.model:ProviderListQuery",
    response="shared.scheduling.model:ProviderList",
)
async def list_providers(call: Call) -> Reply:
    """By id; `specialty` filters (case does not matter). Paged with `limit` and
    `continuationToken` (absent on the last page)."""
    from shared.scheduling.api import ProviderList, list_providers, provider_view

    items, token = await list_providers(
        call.runtime.store, call.query.specialty, call.query.limit, call.query.continuationToken
    )
    return Reply(body=ProviderList(items=[provider_view(i) for i in items], continuationToken=token))


@api.route(
    "providers/{providerId}/slots",
    "GET",
    access=allow(*SIGNED_IN),
    summary="Free (bookable) slots of a provider",
    query="shared.scheduling.model:SlotQuery",
    response="shared.scheduling.model:FreeSlots",
    errors=(404,),
    params=PROVIDER_ID,
)
async def provider_slots(call: Call) -> Reply:
    """`from`/`to` are ISO-8601 instants with an offset, or dates meaning the provider's local days
    (`to` inclusive), at most 62 days apart. Booked, held, too-soon and too-far slots are left out;
    times are UTC. Pages of `maxItems` (default 200, at most 1000): pass `continuationToken` from
    a page, with the same `from`/`to`, for the next one."""
    result = await _scheduling(call).free_slots(call.route("providerId"), call.query)
    return Reply(body=result)
