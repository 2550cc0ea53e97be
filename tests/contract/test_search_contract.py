"""The Search port's contract, on every adapter: SQLite FTS5 (embedded) and Cosmos DB full-text
search (a real account only: the emulator has no full-text search; skipped with the reason).

A small fixed corpus: a question worded differently from the article it wants finds it first."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.kernel.search import Search, SearchEntry, search_terms

INDEX = "contract"

CORPUS = [
    SearchEntry(
        "reset-password",
        "en",
        "Resetting your patient portal password",
        "If you forgot the password for the patient portal, use the Forgot password link on the "
        "sign-in page. A reset link arrives by e-mail within minutes.",
        ("portal", "account"),
    ),
    SearchEntry(
        "book-appointment",
        "en",
        "Booking an appointment",
        "Choose a provider, pick a free slot and confirm. You can book for yourself or a family member.",
    ),
    SearchEntry(
        "move-appointment",
        "en",
        "Cancelling or moving an appointment",
        "Appointments can be cancelled or rescheduled up to 24 hours before the visit.",
    ),
    SearchEntry(
        "refills",
        "en-GB",
        "Prescription refills",
        "Ask your provider for a refill of a repeat prescription through the portal.",
    ),
    SearchEntry(
        "restablecer",
        "es",
        "Restablecer la contraseña del portal",
        "Si olvidó la contraseña, use el enlace de restablecimiento en la página de acceso.",
    ),
    SearchEntry(
        "haslo",
        "pl",
        "Zmiana hasła do portalu pacjenta",
        "Jeśli nie pamiętasz hasła, użyj linku na stronie logowania.",
    ),
]


async def _embedded(tmp_path: Path) -> AsyncIterator[Search]:
    from shared.adapters.sqlite_search import SqliteSearch

    search = SqliteSearch(tmp_path / "search.sqlite3")
    try:
        yield search
    finally:
        await search.close()


async def _cosmos(tmp_path: Path) -> AsyncIterator[Search]:
    """A real Cosmos DB account (PSC_TEST_COSMOS_ENDPOINT, not the emulator): a fresh database with
    the catalogue's `search` container and its full-text policy, dropped afterwards."""
    from azure.cosmos import PartitionKey

    from shared.adapters.cosmos_documents import CosmosDocumentStore
    from shared.adapters.cosmos_search import CosmosSearch
    from shared.kernel.catalog import CONTAINERS, SEARCH
    from tests.integration.endpoints import cosmos_endpoint

    endpoint = cosmos_endpoint()
    if endpoint.emulator:
        pytest.skip("Cosmos DB search contract skipped: the emulator has no full-text search")
    spec = CONTAINERS[SEARCH]
    store = CosmosDocumentStore(
        endpoint.url,
        f"psc-search-{uuid.uuid4().hex[:12]}",
        {SEARCH: spec},
        lambda: endpoint.key,
        emulator=False,
        provision=True,
    )
    try:
        await store._database_client()
        database = await store._client.create_database_if_not_exists(id=store.database_name)
        await database.create_container_if_not_exists(
            id=SEARCH,
            partition_key=PartitionKey(path=spec.partition_key_path),
            full_text_policy={
                "defaultLanguage": "en-US",
                "fullTextPaths": [{"path": p.path, "language": p.language} for p in spec.full_text],
            },
            indexing_policy={"fullTextIndexes": [{"path": p.path} for p in spec.full_text]},
        )
        yield CosmosSearch(store)
    finally:
        try:
            await store.delete_database()
        finally:
            await store.close()


BACKENDS = {"embedded": _embedded, "cosmos": _cosmos}


@pytest.fixture(params=list(BACKENDS))
async def search(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Search]:
    async for backend in BACKENDS[request.param](tmp_path):
        for entry in CORPUS:
            await backend.upsert(INDEX, entry)
        yield backend


async def ask(search: Search, question: str, language: str = "en") -> list[str]:
    hits = await search.query(INDEX, search_terms(question, language), language=language)
    return [hit.id for hit in hits]


async def test_a_question_worded_differently_finds_the_article_first(search: Search) -> None:
    assert (await ask(search, "I can't remember my password, how do I reset it?"))[0] == "reset-password"
    assert (await ask(search, "Can I move the time of my visit?"))[0] == "move-appointment"


async def test_scores_run_from_one_down_and_name_the_words_found(search: Search) -> None:
    terms = search_terms("forgot password for booking", "en")
    hits = await search.query(INDEX, terms, language="en")
    assert hits[0].score == 1.0
    assert all(0 < hit.score <= 1 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    first = hits[0]
    assert first.id == "reset-password"
    assert {"forgot", "password"} <= set(first.matched) <= set(terms)
    booking = next(hit for hit in hits if hit.id == "book-appointment")
    assert booking.matched == ("booking",)  # stemmed: book / booking


async def test_a_language_sees_only_its_own_entries(search: Search) -> None:
    assert "restablecer" not in await ask(search, "contraseña portal")
    assert await ask(search, "contraseña del portal", "es") == ["restablecer"]
    assert await ask(search, "hasła", "pl") == ["haslo"]
    assert "refills" in await ask(search, "refill prescription", "en-US")  # en-GB is English too


async def test_an_upsert_replaces_and_a_removal_removes(search: Search) -> None:
    await search.upsert(INDEX, SearchEntry("refills", "en", "Repeat medicines", "Order repeat medicines."))
    assert "refills" not in await ask(search, "prescription refill")
    assert await ask(search, "repeat medicines") == ["refills"]
    await search.remove(INDEX, "refills", language="en")
    assert await ask(search, "repeat medicines") == []
    await search.remove(INDEX, "refills", language="en")  # absent: nothing happens


async def test_a_question_of_stop_words_only_finds_nothing(search: Search) -> None:
    assert await ask(search, "how do I?") == []
    assert await search.query(INDEX, (), language="en") == []


async def test_indexes_do_not_see_each_other(search: Search) -> None:
    await search.upsert("other", SearchEntry("x", "en", "Password vault", "A password vault."))
    assert "x" not in await ask(search, "password")
