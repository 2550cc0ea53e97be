"""Issue 11's bad-input corpus through the dev host's HTTP edge: every case is a 4xx RFC 9457
problem and leaves every container, the audit trail and the bus exactly as they were."""

from __future__ import annotations

import importlib
import json

import pytest

from tests.conftest import registered_functions
from tests.hardening.corpus import DEPTH_AND_SIZE, IDENTIFIERS, PAGED_ROUTES, TIME, Case
from tests.hardening.corpus_content import BODIES, REFERENCES, TEXT, TYPES
from tests.hardening.corpus_followups import FOLLOWUPS
from tests.hardening.corpus_kpis import KPIS
from tests.hardening.corpus_realtime import REALTIME
from tests.hardening.corpus_transcripts import TRANSCRIPTS
from tests.hardening.corpus_workspace import WORKSPACE
from tests.hardening.world import World, bearer, world

__all__ = ["world"]

CORPUS = [
    *TIME,
    *DEPTH_AND_SIZE,
    *IDENTIFIERS,
    *TEXT,
    *TYPES,
    *REFERENCES,
    *BODIES,
    *WORKSPACE,
    *TRANSCRIPTS,
    *KPIS,
    *REALTIME,
    *FOLLOWUPS,
]


def _content(body: object) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body).encode()


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
async def test_bad_input_is_a_4xx_problem_and_writes_nothing(world: World, case: Case) -> None:
    headers = {**case.headers, **(bearer(case.bearer) if case.bearer else {})}
    content = _content(case.body)
    if content is not None:
        headers.setdefault("Content-Type", "application/json")
    before = world.snapshot()
    answer = await world.client.request(
        case.method, case.path.format(appt=world.appointment_id), headers=headers, content=content
    )
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    assert answer.status_code == case.status, answer.text[:300]
    assert world.snapshot() == before


def test_every_route_that_takes_a_continuation_token_gets_a_deep_one() -> None:
    """PAGED_ROUTES (each with a token as deep as its length limit lets through) names every route
    whose query takes `continuationToken`, and each with that limit."""
    from shared.web.api import ROUTES

    registered_functions()
    paged: dict[str, int | None] = {}
    for spec in ROUTES:
        query = spec.query
        if isinstance(query, str):
            module, _, name = query.partition(":")
            query = getattr(importlib.import_module(module), name)
        if query is None:
            continue
        for field_name, field in query.model_fields.items():
            if (field.alias or field_name) == "continuationToken":
                limits = [m.max_length for m in field.metadata if hasattr(m, "max_length")]
                paged[f"{spec.method} {spec.route}"] = limits[0] if limits else None
    assert paged == {label: limit for label, (_, _, limit) in PAGED_ROUTES.items()}
