"""Search on Cosmos DB full-text search: the `Search` port over the `search` container.

One document per entry, in the logical partition `<index>:<language family>` (`/scope`), so a
query reads one partition (FullTextScore's BM25 statistics are the container's by default). The
searchable text (title, tags, body) goes to the path of its language, each declared in the
container's `fullTextPolicy` with its own analyser and indexed in `indexingPolicy.fullTextIndexes`
(shared/kernel/catalog.py → infra/catalog.json → Bicep):

| family | path | analyser |
|---|---|---|
| en | `/textEn` | en-US |
| es | `/textEs` | es-ES with the preview languages (Bicep `cosmosFullTextPreviewLanguages`), else en-US |
| pl | `/textPl` | en-US: Cosmos DB has no Polish analyser (tokenised, not stemmed for Polish) |
| others | `/text` | en-US |

A query is `SELECT TOP n c.id, c.<path> AS text … WHERE FullTextContainsAny(c.<path>, @t0, …)
ORDER BY RANK FullTextScore(c.<path>, @t0, …)`, every term a parameter. `FullTextScore` cannot be
projected, so scores come from the rank (shared/kernel/search.py), and `matched` is computed from
the text returned with the hit. What Azure accepts here was verified by reading (Microsoft Learn's
full-text search pages, the SDK's own tests), not against a live account; `tests/unit` pins the
queries sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.adapters.cosmos_documents import CosmosDocumentStore, _mapped_errors
from shared.kernel.catalog import SEARCH
from shared.kernel.errors import NotFound
from shared.kernel.search import (
    SearchEntry,
    SearchHit,
    check_query,
    language_family,
    matched_terms,
    rank_scores,
)

TEXT_PATHS = {"en": "textEn", "es": "textEs", "pl": "textPl"}
OTHER_TEXT_PATH = "text"


def text_path(language: str) -> str:
    return TEXT_PATHS.get(language_family(language), OTHER_TEXT_PATH)


def scope(index: str, language: str) -> str:
    return f"{index}:{language_family(language)}"


def search_document(index: str, entry: SearchEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "scope": scope(index, entry.language),
        "index": index,
        "language": entry.language,
        text_path(entry.language): "\n".join((entry.title, " ".join(entry.tags), entry.body)),
    }


def search_query(terms: Sequence[str], *, language: str, top: int) -> tuple[str, list[dict[str, Any]]]:
    """The SQL and parameters of one query (unit tests pin them)."""
    check_query(terms, top)
    path = f"c.{text_path(language)}"
    names = [f"@t{i}" for i in range(len(terms))]
    listed = ", ".join(names)
    # Only the validated count and our own path are formatted in; every term is a parameter.
    sql = (
        f"SELECT TOP {int(top)} c.id, {path} AS text FROM c "  # noqa: S608
        f"WHERE FullTextContainsAny({path}, {listed}) ORDER BY RANK FullTextScore({path}, {listed})"
    )
    return sql, [{"name": n, "value": t} for n, t in zip(names, terms, strict=True)]


class CosmosSearch:
    """`Search` over the catalogue's `search` container of a `CosmosDocumentStore` (its client)."""

    def __init__(self, store: CosmosDocumentStore, container: str = SEARCH) -> None:
        self._store = store
        self._container = container

    async def _client(self) -> Any:
        return await self._store._container_client(self._container)

    async def upsert(self, index: str, entry: SearchEntry) -> None:
        client = await self._client()
        with _mapped_errors():
            await client.upsert_item(body=search_document(index, entry))

    async def remove(self, index: str, id: str, *, language: str) -> None:
        client = await self._client()
        try:
            with _mapped_errors():
                await client.delete_item(item=id, partition_key=scope(index, language))
        except NotFound:
            pass

    async def query(
        self, index: str, terms: Sequence[str], *, language: str, top: int = 10
    ) -> list[SearchHit]:
        if not terms:
            check_query(terms, top)
            return []
        sql, parameters = search_query(terms, language=language, top=top)
        client = await self._client()
        rows: list[dict[str, Any]] = []
        with _mapped_errors():
            pager = client.query_items(
                query=sql, parameters=parameters, partition_key=scope(index, language), max_item_count=top
            )
            async for row in pager:
                rows.append(row)
                if len(rows) == top:
                    break
        scores = rank_scores(len(rows))
        return [
            SearchHit(id=row["id"], score=score, matched=matched_terms(str(row.get("text") or ""), terms))
            for row, score in zip(rows, scores, strict=True)
        ]

    async def close(self) -> None:
        """The store owns the client."""
