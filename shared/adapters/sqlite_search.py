"""Search on SQLite FTS5 (the embedded default): the `Search` port over one file under PSC_DATA_DIR.

Two FTS5 tables: English entries are tokenised `porter unicode61 remove_diacritics 2` (Porter
stemming over Unicode words, case and diacritics folded); every other language `unicode61
remove_diacritics 2` (FTS5 ships no stemmer for Polish or Spanish). A query is the terms OR-ed,
each quoted (FTS5 syntax in a term is just text), ranked by `bm25()` with the title weighted 3,
tags 2 and the body 1. Which terms a hit holds is asked of FTS5 itself, term by term, over the
hits only, so `matched` follows the engine's own stemming.

A file of its own (`search.sqlite3`) rather than tables in the document store: the index is
derived data the knowledge service rebuilds on every write, and the store stays Cosmos-shaped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from shared.adapters.sqlite_file import SqliteFile
from shared.kernel.search import (
    SearchEntry,
    SearchHit,
    check_query,
    language_family,
    relative_scores,
)

_PORTER = "entries_porter"
_PLAIN = "entries_plain"
_COLUMNS = "idx UNINDEXED, lang UNINDEXED, doc UNINDEXED, title, body, tags"
_SCHEMA = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {_PORTER} USING fts5({_COLUMNS}, "
    "tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {_PLAIN} USING fts5({_COLUMNS}, "
    "tokenize='unicode61 remove_diacritics 2')",
)
# bm25 weights per column, in table order: idx, lang, doc (unindexed), title, body, tags.
_RANK = "bm25({table}, 0, 0, 0, 3.0, 1.0, 2.0)"


def _table(language: str) -> str:
    return _PORTER if language_family(language) == "en" else _PLAIN


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


class SqliteSearch:
    """`Search` on one SQLite file (created on first use; `close()` is final)."""

    def __init__(self, path: Path, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        self._file = SqliteFile(
            path, label="embedded search index", schema=_SCHEMA, schema_version=1, busy_timeout=busy_timeout
        )

    async def upsert(self, index: str, entry: SearchEntry) -> None:
        family = language_family(entry.language)
        table = _table(entry.language)

        def write(conn: sqlite3.Connection) -> None:
            for name in (_PORTER, _PLAIN):
                conn.execute(f"DELETE FROM {name} WHERE idx = ? AND doc = ?", (index, entry.id))  # noqa: S608
            conn.execute(
                f"INSERT INTO {table} (idx, lang, doc, title, body, tags) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                (index, family, entry.id, entry.title, entry.body, " ".join(entry.tags)),
            )

        await self._file.write(write)

    async def remove(self, index: str, id: str, *, language: str) -> None:
        table = _table(language)
        await self._file.write(
            lambda conn: conn.execute(f"DELETE FROM {table} WHERE idx = ? AND doc = ?", (index, id))  # noqa: S608
        )

    async def query(
        self, index: str, terms: Sequence[str], *, language: str, top: int = 10
    ) -> list[SearchHit]:
        check_query(terms, top)
        if not terms:
            return []
        table = _table(language)
        family = language_family(language)
        rank = _RANK.format(table=table)
        match = " OR ".join(_phrase(t) for t in terms)

        def run(conn: sqlite3.Connection) -> list[SearchHit]:
            rows = conn.execute(
                f"SELECT doc, {rank} AS rank FROM {table} "  # noqa: S608
                f"WHERE {table} MATCH ? AND idx = ? AND lang = ? ORDER BY rank, doc LIMIT ?",
                (match, index, family, top),
            ).fetchall()
            if not rows:
                return []
            ids = [row[0] for row in rows]
            holders: dict[str, list[str]] = {doc: [] for doc in ids}
            marks = ", ".join("?" for _ in ids)
            for term in terms:
                for (doc,) in conn.execute(
                    f"SELECT doc FROM {table} WHERE {table} MATCH ? AND idx = ? AND lang = ? "  # noqa: S608
                    f"AND doc IN ({marks})",
                    (_phrase(term), index, family, *ids),
                ):
                    holders[doc].append(term)
            scores = relative_scores([-row[1] for row in rows])
            return [
                SearchHit(id=doc, score=score, matched=tuple(holders[doc]))
                for doc, score in zip(ids, scores, strict=True)
            ]

        return await self._file.call(run)

    async def close(self) -> None:
        await self._file.close()
