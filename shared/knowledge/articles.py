"""Knowledge articles: versioned writes, reads, and keeping the search index in step.

A write that changes an article adds a version: the new version document and the replaced current
one go in one transactional batch (one partition per article), under the current one's ETag, so
two writers never make the same version and a crash never leaves half of it. A write that changes
nothing (a retry) answers the current version and writes nothing.

The search index (the Search port) is derived data written after the article: a published article
is upserted under its language, anything else removed. Search re-reads each hit's current version
and keeps only what is published in the language asked (shared/knowledge/finder.py), so a crash
between the two writes can leave a stale index entry but never shows a draft or an archived
article; writing the article again heals the index.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth.principal import Principal
from shared.kernel.catalog import ARTICLES
from shared.kernel.clock import Clock
from shared.kernel.documents import BatchFailed, BatchOperation, DocumentStore
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed
from shared.kernel.etags import IfMatch, check_if_match, entity_tag
from shared.kernel.retry import Again, retry
from shared.kernel.search import Search, SearchEntry
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.knowledge.documents import ArticleDocument, ArticleVersion, version_id
from shared.knowledge.model import Article, ArticleRequest, ArticleStatus

INDEX = "knowledge"


@dataclass(frozen=True)
class Written:
    article: ArticleDocument
    created: bool

    @property
    def etag(self) -> str:
        return entity_tag(self.article.etag)


def article_of(doc: ArticleDocument) -> Article:
    return Article(
        id=doc.article_id,
        version=doc.version,
        title=doc.title,
        body=doc.text,
        language=doc.language,
        status=ArticleStatus(doc.status),
        tags=list(doc.tags),
        updatedAt=doc.updated_at,
        updatedBy=doc.updated_by,
    )


def _same(doc: ArticleDocument, request: ArticleRequest) -> bool:
    return (doc.title, doc.text, doc.language, doc.status, list(doc.tags)) == (
        request.title,
        request.body,
        request.language,
        str(request.status),
        list(request.tags),
    )


class Articles:
    def __init__(self, store: DocumentStore, search: Search, clock: Clock) -> None:
        self._store = store
        self._search = search
        self._clock = clock
        self._heads = Stored(store, ARTICLES, ArticleDocument)

    async def read(self, article_id: str, *, published_only: bool) -> ArticleDocument:
        doc = await self._heads.read_or_none(article_id, article_id)
        if doc is None or (published_only and doc.status != ArticleStatus.PUBLISHED):
            raise NotFound("No such article.")
        return doc

    async def put(
        self, actor: Principal, article_id: str, request: ArticleRequest, *, if_match: IfMatch | None
    ) -> Written:
        before: list[ArticleDocument | None] = [None]

        async def step() -> Written:
            current = await self._heads.read_or_none(article_id, article_id)
            before[0] = current
            check_if_match(if_match, None if current is None else entity_tag(current.etag), "article")
            if current is not None and _same(current, request):
                return Written(current, created=False)
            now = stamp(self._clock.now())
            version = 1 if current is None else current.version + 1
            fields = {
                "article_id": article_id,
                "version": version,
                "title": request.title,
                "text": request.body,
                "language": request.language,
                "status": str(request.status),
                "tags": list(request.tags),
            }
            head = ArticleDocument(
                id=article_id,
                created_at=now if current is None else current.created_at,
                updated_at=now,
                updated_by=actor.subject,
                **fields,
            )
            record = ArticleVersion(
                id=version_id(article_id, version), written_at=now, written_by=actor.subject, **fields
            )
            operations = [
                BatchOperation.create(record.body()),
                BatchOperation.create(head.body())
                if current is None
                else BatchOperation.replace(head.body(), etag=current.etag),
            ]
            try:
                results = await self._store.container(ARTICLES).batch(article_id, operations)
            except BatchFailed as failed:
                if isinstance(failed.error, Conflict | PreconditionFailed | NotFound):
                    raise Again() from None  # another writer made this version first
                raise
            written = results[1]
            head.store_etag = None if written is None else written.get("_etag")
            return Written(head, created=current is None)

        written = await retry(
            step, give_up=lambda: Conflict("The article is being changed concurrently; retry.")
        )
        await self._reindex(written.article, before[0])
        return written

    async def _reindex(self, doc: ArticleDocument, before: ArticleDocument | None) -> None:
        if before is not None and before.language != doc.language:
            await self._search.remove(INDEX, doc.article_id, language=before.language)
        if doc.status == ArticleStatus.PUBLISHED:
            entry = SearchEntry(doc.article_id, doc.language, doc.title, doc.text, tuple(doc.tags))
            await self._search.upsert(INDEX, entry)
        else:
            await self._search.remove(INDEX, doc.article_id, language=doc.language)

    async def version(self, article_id: str, version: int) -> ArticleVersion:
        found = await Stored(self._store, ARTICLES, ArticleVersion).read_or_none(
            version_id(article_id, version), article_id
        )
        if found is None:
            raise NotFound("No such article version.")
        return found
