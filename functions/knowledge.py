"""Knowledge: articles (KnowledgeManager writes; agents and supervisors read published ones),
search, and suggestions for a conversation.

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import Api, Call, Reply, allow

if TYPE_CHECKING:
    from shared.knowledge.api import Articles, Finder

bp = func.Blueprint()
api = Api(bp, tag="knowledge")

M = "shared.knowledge.model:"
READERS = (Role.AGENT, Role.SUPERVISOR)


def _articles(call: Call) -> Articles:
    from shared.knowledge.api import Articles

    return Articles(call.runtime.store, call.runtime.search, call.runtime.clock)


def _finder(call: Call) -> Finder:
    from shared.knowledge.api import Finder

    return Finder(call.runtime.store, call.runtime.search, call.runtime.clock)


@api.route(
    "knowledge/articles/{articleId}",
    "PUT",
    access=allow(Role.KNOWLEDGE_MANAGER),
    summary="Create or change a knowledge article (a new version)",
    body=M + "ArticleRequest",
    response=M + "Article",
    also=((201, "Created"),),
    if_match=True,
)
async def put_article(call: Call) -> Reply:
    """Each write that changes the article adds a version (the same body again changes nothing).
    Only `published` articles are found by search and suggestions. Send `If-Match` with the ETag
    you read to avoid overwriting a concurrent change (412)."""
    from shared.knowledge.api import article_of

    written = await _articles(call).put(call.user, call.route("articleId"), call.body, if_match=call.if_match)
    return Reply(
        body=article_of(written.article),
        status=201 if written.created else 200,
        headers={"ETag": written.etag},
    )


@api.route(
    "knowledge/articles/{articleId}",
    "GET",
    access=allow(Role.KNOWLEDGE_MANAGER, *READERS),
    summary="Read a knowledge article",
    response=M + "Article",
    errors=(404,),
    etag=True,
)
async def get_article(call: Call) -> Reply:
    """Knowledge managers read any status; agents and supervisors published articles only (any
    other answers 404)."""
    from shared.kernel.etags import entity_tag
    from shared.knowledge.api import article_of

    doc = await _articles(call).read(
        call.route("articleId"), published_only=not call.user.has(Role.KNOWLEDGE_MANAGER)
    )
    return Reply(body=article_of(doc), headers={"ETag": entity_tag(doc.etag)})


@api.route(
    "knowledge/search",
    "GET",
    access=allow(*READERS),
    summary="Search published articles",
    query=M + "SearchQuery",
    response=M + "SearchResults",
)
async def search_articles(call: Call) -> Reply:
    """Published articles in `language` (default `en`) that hold any of the question's words,
    best first (at most 10), each with a 0-1 `score` and the words it `matched`. English words
    are stemmed; Polish and Spanish words match as written, case and accents aside (embedded)."""
    query = call.query
    return Reply(body=await _finder(call).search(query.q, query.language))


@api.route(
    "conversations/{conversationId}/suggestions",
    "GET",
    access=allow(*READERS),
    summary="Articles for this conversation",
    response=M + "SearchResults",
    errors=(404,),
)
async def conversation_suggestions(call: Call) -> Reply:
    """The top three published articles for the conversation's reason (and triage specialty and
    symptoms), in its language. The assigned agent or a supervisor; audited."""
    result = await _finder(call).suggestions(call.user, call.route("conversationId"), call.correlation_id)
    return Reply(body=result)


@api.route(
    "conversations/{conversationId}/articles",
    "POST",
    access=allow(*READERS),
    summary="Send a published article to the patient",
    body="shared.knowledge.sending:SendArticleRequest",
    response="shared.conversations.model:MessageView",
    status=201,
    also=((200, "Sent before (the same id, or the same version): the first message, unchanged"),),
    errors=(404, 409, 422),
)
async def send_article(call: Call) -> Reply:
    """The article's title and body as a message the patient sees (a message holds 4,000
    characters: a longer article is 422). The conversation's assigned agent while it is active or
    in wrap-up, or a supervisor until it closes (409). The same version sent again answers the
    first message (200). Audited."""
    from shared.knowledge.api import send_article as send

    message, created = await send(
        call.runtime.store,
        call.runtime.clock,
        call.user,
        call.route("conversationId"),
        call.body,
        call.correlation_id,
    )
    return Reply(body=message.view(), status=201 if created else 200)
