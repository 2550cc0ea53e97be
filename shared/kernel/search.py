"""Search port: full-text search over short documents (knowledge articles), one index per kind,
each entry in one language.

Adapters: SQLite FTS5 ranked by `bm25()` in the embedded default (`shared/adapters/sqlite_search.py`)
and Cosmos DB full-text search in Azure (`shared/adapters/cosmos_search.py`: `FullTextContainsAny`,
`ORDER BY RANK FullTextScore`). Both get the query as terms already split here (`search_terms`),
so no engine ever parses a caller's query syntax: each term is quoted or passed as a parameter.

What a hit means, on every adapter: ids best first; `score` in (0, 1], 1 for the best hit. FTS5
exposes its score (bm25, lower is better), so a hit scores its bm25 relative to the best; Cosmos
DB does not project `FullTextScore`, so there the score is derived from the rank (1 / rank).
`matched` lists the query terms the hit contains, as the caller gave them.

Stemming is the engine's: English gets Porter stemming on FTS5 and Cosmos DB's English analyser;
FTS5 has no stemmer for other languages (Polish and Spanish get Unicode word splitting and case and
diacritic folding only); Cosmos DB stems Spanish with its preview languages enabled and has no
Polish analyser (the English one tokenises it). A stale entry (its source changed since) is the
caller's to filter: the index is derived data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAX_TERMS = 16
MAX_TOP = 50

# Words a question is full of and that say nothing about its subject (the engines' own stop
# lists are not applied to our OR-ed terms: "how" would otherwise match half the corpus).
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "a",
            "an",
            "and",
            "are",
            "as",
            "at",
            "be",
            "but",
            "by",
            "can",
            "could",
            "do",
            "does",
            "did",
            "for",
            "from",
            "get",
            "got",
            "had",
            "has",
            "have",
            "how",
            "i",
            "if",
            "in",
            "into",
            "is",
            "it",
            "its",
            "me",
            "my",
            "no",
            "not",
            "of",
            "on",
            "or",
            "our",
            "please",
            "so",
            "than",
            "that",
            "the",
            "their",
            "them",
            "then",
            "there",
            "these",
            "they",
            "this",
            "to",
            "up",
            "us",
            "was",
            "we",
            "were",
            "what",
            "when",
            "where",
            "which",
            "who",
            "why",
            "will",
            "with",
            "would",
            "you",
            "your",
            "yours",
        ]
    ),
    "pl": frozenset(
        [
            "a",
            "aby",
            "ale",
            "bo",
            "by",
            "czy",
            "dla",
            "do",
            "i",
            "jak",
            "jaki",
            "jest",
            "jestem",
            "jeśli",
            "już",
            "ma",
            "mam",
            "mi",
            "mnie",
            "mogę",
            "może",
            "na",
            "nie",
            "o",
            "od",
            "po",
            "przez",
            "się",
            "są",
            "ta",
            "tak",
            "te",
            "to",
            "tu",
            "w",
            "we",
            "z",
            "za",
            "że",
        ]
    ),
    "es": frozenset(
        [
            "a",
            "al",
            "como",
            "con",
            "cómo",
            "de",
            "del",
            "el",
            "en",
            "es",
            "esta",
            "está",
            "este",
            "hay",
            "la",
            "las",
            "lo",
            "los",
            "me",
            "mi",
            "mis",
            "no",
            "o",
            "para",
            "pero",
            "por",
            "puedo",
            "qué",
            "que",
            "se",
            "si",
            "sí",
            "su",
            "sus",
            "tengo",
            "un",
            "una",
            "y",
            "ya",
            "yo",
        ]
    ),
}
_WORD = re.compile(r"\w+", re.UNICODE)


def language_family(language: str) -> str:
    """`en-GB` → `en`: the part of a language tag the engines' analysers go by."""
    return language.split("-", 1)[0].lower()


def fold(text: str) -> str:
    """Lower case without diacritics (what FTS5's unicode61 `remove_diacritics 2` compares)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ł", "l")


def search_terms(text: str, language: str) -> tuple[str, ...]:
    """The distinct words of a query worth searching for, in order, at most MAX_TERMS: lower
    case, without the language's stop words, single letters and pure numbers of one digit."""
    stop = _STOPWORDS.get(language_family(language), _STOPWORDS["en"])
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        word = word.strip("_")
        if len(word) < 2 or word in stop or fold(word) in stop or "_" in word:
            continue
        seen.setdefault(word, None)
        if len(seen) == MAX_TERMS:
            break
    return tuple(seen)


@dataclass(frozen=True)
class SearchEntry:
    """One searchable document: its id in the index, the language it is written in, and its text."""

    id: str
    language: str
    title: str
    body: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    matched: tuple[str, ...]


@runtime_checkable
class Search(Protocol):
    async def upsert(self, index: str, entry: SearchEntry) -> None:
        """Add or replace `entry` in `index` under its language."""
        ...

    async def remove(self, index: str, id: str, *, language: str) -> None:
        """Remove the entry (a no-op when absent)."""
        ...

    async def query(
        self, index: str, terms: Sequence[str], *, language: str, top: int = 10
    ) -> list[SearchHit]:
        """The entries of `language` holding any of `terms` (from `search_terms`), best first, at
        most `top` (1..MAX_TOP). No terms: no hits."""
        ...

    async def close(self) -> None: ...


def check_query(terms: Sequence[str], top: int) -> None:
    """What every adapter refuses before it runs a query (programming errors, not input)."""
    if not 1 <= top <= MAX_TOP:
        raise ValueError(f"top must be 1..{MAX_TOP}")
    if len(terms) > MAX_TERMS or any(not t or not _WORD.fullmatch(t) for t in terms):
        raise ValueError("terms must come from search_terms()")


def relative_scores(raw: Sequence[float]) -> list[float]:
    """Scores where bigger is better, as fractions of the best (which gets 1.0)."""
    best = max(raw, default=0.0)
    if best <= 0:
        return [1.0 for _ in raw]
    return [round(max(value, 0.0) / best, 4) for value in raw]


def rank_scores(count: int) -> list[float]:
    """Scores derived from the rank alone (1, 1/2, 1/3 …), for an engine that exposes none."""
    return [round(1 / (rank + 1), 4) for rank in range(count)]


def matched_terms(text: str, terms: Sequence[str]) -> tuple[str, ...]:
    """The terms `text` holds, comparing folded words; a term also matches a word it starts with
    or that starts it when the shorter has at least 4 letters (reset/resetting, password/passwords),
    the nearest a plain comparison gets to the engines' stemming. For engines that cannot say
    which terms matched (Cosmos DB's full-text functions answer for the whole query)."""
    words = {fold(w) for w in _WORD.findall(text)}
    found = []
    for term in terms:
        folded = fold(term)
        for word in words:
            shorter, longer = sorted((folded, word), key=len)
            if word == folded or (len(shorter) >= 4 and longer.startswith(shorter)):
                found.append(term)
                break
    return tuple(found)
