"""The Cosmos DB adapter against a real endpoint (or the emulator): what the contract suite does
not cover. Skips with the reason when no endpoint is configured (see endpoints.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from shared.adapters.cosmos_documents import CosmosDocumentStore
from shared.kernel.catalog import CONTAINERS
from shared.kernel.documents import Query, where
from shared.kernel.errors import Unavailable
from tests.integration.endpoints import cosmos_endpoint

pytestmark = pytest.mark.integration


@pytest.fixture
async def store() -> AsyncIterator[CosmosDocumentStore]:
    endpoint = cosmos_endpoint()
    store = CosmosDocumentStore(
        endpoint.url,
        f"psc-it-{uuid.uuid4().hex[:12]}",
        CONTAINERS,
        lambda: endpoint.key,
        emulator=endpoint.emulator,
        provision=True,
    )
    try:
        yield store
    finally:
        try:
            await store.delete_database()
        finally:
            await store.close()


async def test_ensure_containers_creates_the_catalogue_with_its_keys_and_ttl(
    store: CosmosDocumentStore,
) -> None:
    await store.ensure_containers()
    await store.ensure_containers()  # idempotent

    database = await store._database_client()
    for spec in CONTAINERS.values():
        properties = await database.get_container_client(spec.name).read()
        assert properties["partitionKey"]["paths"] == [spec.partition_key_path]
        assert properties.get("defaultTtl") == spec.default_ttl
    await store.ping()


async def test_a_missing_container_answers_unavailable_not_not_found(store: CosmosDocumentStore) -> None:
    # Neither the database nor the container exists: a deployment fault, not an absent item.
    with pytest.raises(Unavailable):
        await store.container("patients").read("p1", "p1")


async def test_keyword_field_names_query_correctly(store: CosmosDocumentStore) -> None:
    await store.ensure_containers()
    patients = store.container("patients")
    await patients.create({"id": "p1", "value": 3, "order": {"by": "x"}})

    page = await patients.query(
        Query((where("value", "=", 3), where("order.by", "=", "x"))), partition_key="p1"
    )

    assert [item["id"] for item in page.items] == ["p1"]
