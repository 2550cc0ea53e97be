"""Patient matching and the contact index that keeps it off cross-partition queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.auth.principal import Principal
from shared.kernel.catalog import CONTAINERS
from shared.kernel.clock import ManualClock
from shared.kernel.documents import DocumentStore, Query
from shared.patients.api import PatientIdentity
from shared.patients.matching import (
    ContactIndex,
    PatientMatcher,
    contact_key,
    contacts_of,
    index_patient,
    normalize_email,
    normalize_phone,
    provisional_patient_id,
)
from shared.patients.registry import PatientRegistry

ADMIN = Principal(subject="admin-1", name=None, roles=frozenset({"Administrator"}))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DocumentStore]:
    s = SqliteDocumentStore(tmp_path / "store.sqlite3", CONTAINERS, ManualClock())
    yield s
    await s.close()


async def write(store: DocumentStore, patient_id: str, **changes: object) -> None:
    registry = PatientRegistry(store, ManualClock())
    await registry.write(ADMIN, patient_id, {"name": "N", **changes}, if_match=None, correlation_id="c-1")


async def match(store: DocumentStore, **identity: str) -> tuple[str, str]:
    found = await PatientMatcher(store).match(PatientIdentity(**identity), "bot-1", ManualClock().now())
    return found.patient_id, found.method


def test_normalisation() -> None:
    assert normalize_email("  Ann@Example.ORG ") == "ann@example.org"
    assert normalize_email("not an email") is None
    assert normalize_phone("+48 601 234 567") == "+48601234567"
    assert normalize_phone("601 234 567") is None  # no country: cannot be E.164
    keys = contacts_of({"email": "a@b.org", "phone": "+48601234567"})
    assert set(keys) == {contact_key("email", "a@b.org"), contact_key("phone", "+48601234567")}
    assert all(k.startswith(("contact:email:", "contact:phone:")) and "@" not in k for k in keys)


async def test_the_registry_keeps_the_index_current(store: DocumentStore) -> None:
    index = ContactIndex(store)
    email_key = contact_key("email", "a@b.org")
    await write(store, "p-1", email="a@b.org", phone="+48601234567")
    await write(store, "p-2", email="a@b.org")
    assert sorted(await index.patient_ids(email_key)) == ["p-1", "p-2"]
    assert await index.patient_ids(contact_key("phone", "+48601234567")) == ["p-1"]
    await write(store, "p-1", email="new@b.org", phone=None)
    assert await index.patient_ids(email_key) == ["p-2"]
    assert await index.patient_ids(contact_key("phone", "+48601234567")) == []
    assert await index.patient_ids(contact_key("email", "new@b.org")) == ["p-1"]
    await write(store, "p-2", email=None)
    lookups = await store.container("lookups").query_cross_partition(Query())
    assert [d["id"] for d in lookups.items] == [contact_key("email", "new@b.org")]  # empty docs go


async def test_concurrent_adds_to_one_index_entry_lose_nothing(store: DocumentStore) -> None:
    await asyncio.gather(*(write(store, f"p-{i}", email="shared@b.org") for i in range(8)))
    ids = await ContactIndex(store).patient_ids(contact_key("email", "shared@b.org"))
    assert sorted(ids) == sorted(f"p-{i}" for i in range(8))


async def test_matching_by_id_email_and_phone(store: DocumentStore) -> None:
    await write(store, "p-1", email="a@b.org", phone="+48601234567")
    await write(store, "p-2", email="c@d.org", phone="+48601234568")
    assert await match(store, id="p-2", email="a@b.org") == ("p-2", "id")
    assert await match(store, id="p-404", email="A@B.org") == ("p-1", "email")
    assert await match(store, id="not a valid id!", phone="+48 601 234 568") == ("p-2", "phone")


async def test_ambiguity_and_conflicts_fall_back_to_a_provisional_patient(store: DocumentStore) -> None:
    await write(store, "p-1", email="fam@b.org", phone="+48601234567")
    await write(store, "p-2", email="fam@b.org", phone="+48601234568")
    provisional = provisional_patient_id("bot-1")
    assert await match(store, email="fam@b.org") == (provisional, "provisional")
    # Phone narrows an ambiguous e-mail down to one patient.
    assert await match(store, email="fam@b.org", phone="+48601234568") == ("p-2", "phone")
    # E-mail and phone point at different patients: not guessed.
    await write(store, "p-3", email="solo@b.org")
    assert await match(store, email="solo@b.org", phone="+48601234567") == (provisional, "provisional")


async def test_stale_index_entries_never_match(store: DocumentStore) -> None:
    await write(store, "p-1", email="a@b.org")
    # A process died after indexing but before writing: the index names a patient that does not
    # carry the address (or does not exist).
    await ContactIndex(store).add(contact_key("email", "x@b.org"), "p-1")
    await ContactIndex(store).add(contact_key("email", "x@b.org"), "p-ghost")
    assert await match(store, email="x@b.org") == (provisional_patient_id("bot-1"), "provisional")


async def test_a_provisional_patient_is_created_once_with_valid_registry_fields(store: DocumentStore) -> None:
    matcher = PatientMatcher(store)
    identity = PatientIdentity(name=None, email="broken-email", phone="+48 601 234 567", language="english")
    first = await matcher.match(identity, "bot-9", ManualClock().now())
    again = await matcher.match(identity, "bot-9", ManualClock().now())
    assert first.created
    assert not again.created
    assert first.patient_id == again.patient_id == provisional_patient_id("bot-9")
    doc = await store.container("patients").read(first.patient_id, first.patient_id)
    assert doc["provisional"] is True
    assert doc["phone"] == "+48601234567"
    assert "email" not in doc
    assert "language" not in doc
    assert doc["name"]


async def test_index_patient_indexes_seeded_documents(store: DocumentStore) -> None:
    item = {"id": "p-demo-1", "email": "demo@example.org", "phone": "+48601234567"}
    await store.container("patients").create({**item, "name": "Demo"})
    await index_patient(store, item)
    assert await match(store, email="demo@example.org") == ("p-demo-1", "email")
