"""What the Cosmos DB search adapter sends: the documents it writes (text in the path of its
language, one partition per index and language) and the queries (every term a parameter, one
partition, ranked by FullTextScore); scores derived from the rank, matched words from the text."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.cosmos_search import CosmosSearch, search_document, search_query
from shared.kernel.errors import NotFound
from shared.kernel.search import SearchEntry


class FakePager:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def __aiter__(self) -> FakePager:
        self._iter = iter(self._rows)
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._iter)
        except StopIteration:
            raise StopAsyncIteration from None


class FakeContainer:
    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.rows = rows or []
        self.missing = False

    async def upsert_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("upsert", kw))
        return kw["body"]

    async def delete_item(self, **kw: Any) -> None:
        self.calls.append(("delete", kw))
        if self.missing:
            raise NotFound("gone")

    def query_items(self, **kw: Any) -> FakePager:
        self.calls.append(("query", kw))
        return FakePager(self.rows)


class FakeStore:
    def __init__(self, container: FakeContainer) -> None:
        self.container = container

    async def _container_client(self, name: str) -> FakeContainer:
        assert name == "search"
        return self.container


def adapter(container: FakeContainer) -> CosmosSearch:
    return CosmosSearch(FakeStore(container))  # type: ignore[arg-type]


def test_an_entry_is_stored_in_its_language_partition_and_path() -> None:
    entry = SearchEntry("a1", "es-ES", "Contraseña", "Use el enlace.", ("portal",))
    assert search_document("knowledge", entry) == {
        "id": "a1",
        "scope": "knowledge:es",
        "index": "knowledge",
        "language": "es-ES",
        "textEs": "Contraseña\nportal\nUse el enlace.",
    }
    assert "textPl" in search_document("knowledge", SearchEntry("a2", "pl", "t", "b"))
    assert "textEn" in search_document("knowledge", SearchEntry("a3", "en-GB", "t", "b"))
    assert "text" in search_document("knowledge", SearchEntry("a4", "de", "t", "b"))


def test_the_query_passes_every_term_as_a_parameter_and_ranks_by_full_text_score() -> None:
    sql, parameters = search_query(("reset", "password"), language="en", top=10)
    assert sql == (
        "SELECT TOP 10 c.id, c.textEn AS text FROM c WHERE FullTextContainsAny(c.textEn, @t0, @t1) "
        "ORDER BY RANK FullTextScore(c.textEn, @t0, @t1)"
    )
    assert parameters == [{"name": "@t0", "value": "reset"}, {"name": "@t1", "value": "password"}]


@pytest.mark.parametrize("terms", [("a b",), ("x'); DROP",), ("",)])
def test_terms_that_did_not_come_from_search_terms_are_refused(terms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="search_terms"):
        search_query(terms, language="en", top=10)


async def test_a_query_reads_one_partition_and_derives_scores_from_the_rank() -> None:
    container = FakeContainer(
        [
            {"id": "a", "text": "Resetting your password"},
            {"id": "b", "text": "Passwords and portal accounts"},
            {"id": "c", "text": "Booking"},
        ]
    )
    hits = await adapter(container).query("knowledge", ("reset", "password"), language="en-US", top=3)
    kind, call = container.calls[0]
    assert kind == "query"
    assert call["partition_key"] == "knowledge:en"
    assert "enable_cross_partition_query" not in call
    assert [(h.id, h.score) for h in hits] == [("a", 1.0), ("b", 0.5), ("c", 0.3333)]
    assert hits[0].matched == ("reset", "password")
    assert hits[1].matched == ("password",)
    assert hits[2].matched == ()


async def test_writes_go_to_the_entry_s_partition_and_removing_nothing_is_fine() -> None:
    container = FakeContainer()
    search = adapter(container)
    await search.upsert("knowledge", SearchEntry("a1", "pl", "Hasło", "Zmiana hasła"))
    container.missing = True
    await search.remove("knowledge", "a1", language="pl-PL")
    assert container.calls[0][1]["body"]["scope"] == "knowledge:pl"
    assert container.calls[1] == ("delete", {"item": "a1", "partition_key": "knowledge:pl"})
    assert await search.query("knowledge", (), language="en") == []
    assert len(container.calls) == 2  # no query for no terms
