"""Finding articles: search for an agent's question, and suggestions for a conversation.

The Search port ranks; this module turns a question into terms, re-reads each hit's current
version (point reads, in parallel) and keeps only published articles in the language asked (the
index is derived data and may lag an article's last write: shared/knowledge/articles.py).

Suggestions search with the conversation's own words: `suggestion_text` gathers them (the bot's
`reason`, the triage's specialty and symptoms, then the patient's latest messages, newest first:
the query keeps its first 16 terms, so the escalation's own words come first), and the top three
published articles in the conversation's language come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from shared.audit.api import record_access
from shared.auth.principal import Principal, Role
from shared.conversations.api import ConversationDocument, conversations, patient_texts
from shared.kernel.catalog import ARTICLES
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import NotFound
from shared.kernel.search import Search, language_family, search_terms
from shared.kernel.stored import Stored
from shared.knowledge.articles import INDEX
from shared.knowledge.documents import ArticleDocument
from shared.knowledge.model import ArticleStatus, Found, SearchResults

SEARCH_TOP = 10
SUGGESTIONS = 3


def suggestion_text(conversation: ConversationDocument, patient_messages: Sequence[str] = ()) -> str:
    """The words suggestions search with: the bot's reason for escalating, the triage's specialty
    and symptoms, and the patient's messages (newest first)."""
    parts = [
        conversation.reason or "",
        conversation.specialty or "",
        *(conversation.symptoms or []),
        *patient_messages,
    ]
    return "\n".join(part for part in parts if part)


def conversation_language(conversation: ConversationDocument) -> str:
    return conversation.language or conversation.locale or "en"


class Finder:
    def __init__(self, store: DocumentStore, search: Search, clock: Clock) -> None:
        self._store = store
        self._search = search
        self._clock = clock
        self._heads = Stored(store, ARTICLES, ArticleDocument)

    async def search(self, text: str, language: str, *, top: int = SEARCH_TOP) -> SearchResults:
        terms = search_terms(text, language)
        hits = await self._search.query(INDEX, terms, language=language, top=top)
        heads = await asyncio.gather(*(self._heads.read_or_none(hit.id, hit.id) for hit in hits))
        family = language_family(language)
        items = [
            Found(id=head.article_id, title=head.title, score=hit.score, matched=list(hit.matched))
            for hit, head in zip(hits, heads, strict=True)
            if head is not None
            and head.status == ArticleStatus.PUBLISHED
            and language_family(head.language) == family
        ]
        return SearchResults(items=items)

    async def suggestions(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> SearchResults:
        """For the conversation's assigned agent or a supervisor (anyone else: 404). Reading the
        conversation's words is audited."""
        doc = await conversations.read_or_none(self._store, conversation_id)
        if doc is None or not (principal.has(Role.SUPERVISOR) or doc.agent_id == principal.subject):
            raise NotFound("no such conversation")
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action="read",
            resource=f"conversations/{doc.id}/suggestions",
            patient_id=doc.patient_id,
            correlation_id=correlation_id,
        )
        said = await patient_texts(self._store, doc.id)
        return await self.search(suggestion_text(doc, said), conversation_language(doc), top=SUGGESTIONS)
