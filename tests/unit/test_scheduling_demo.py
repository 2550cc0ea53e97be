"""The scheduling demo seed: idempotent, providers in several zones, lines for the banner."""

from __future__ import annotations

from shared.kernel.documents import Query
from shared.runtime import Runtime
from shared.scheduling.api import DEMO_PROVIDERS, seed_scheduling_demo
from tests.conftest import invoke, token


async def test_seeding_twice_changes_nothing_and_the_providers_work(runtime: Runtime) -> None:
    lines = await seed_scheduling_demo(runtime)
    assert lines
    assert all(isinstance(line, str) and line for line in lines)
    providers = runtime.store.container("providers")
    first = (await providers.query_cross_partition(Query(), max_items=100)).items
    assert await seed_scheduling_demo(runtime) == lines
    again = (await providers.query_cross_partition(Query(), max_items=100)).items
    assert [p["_etag"] for p in again] == [p["_etag"] for p in first]
    assert {p["timeZone"] for p in first} >= {"Europe/Warsaw", "America/New_York"}
    assert len({p["specialty"] for p in first}) >= 3
    patient = token("Patient", sub="demo-patient-1", patient_id="p-demo-1")
    for provider_id in DEMO_PROVIDERS:
        answer = await invoke(
            "provider_slots",
            bearer=patient,
            route_params={"providerId": provider_id},
            params={"from": "2026-01-12", "to": "2026-01-16"},
        )
        assert answer.status == 200
        assert answer.json["slots"], provider_id
