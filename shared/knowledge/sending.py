"""Sending a knowledge article to the patient (`POST /api/conversations/{conversationId}/articles`):
the published article's title and body become a patient-visible message of the conversation,
written through conversations' public module (its rules: the assigned agent while the conversation
is active or in wrap-up, or a supervisor until it closes; anyone else 404; audited there).

A message holds at most 4,000 characters (PRODUCT.md *Messages*): a longer article is refused
(422) rather than cut, since a cut article could drop the step that matters. The message's sender
id defaults to `article:<articleId>:v<version>`, so sending the same version again (a retry, a
double click) answers the first message; a new version is a new message.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.auth.principal import Principal, Role
from shared.conversations.api import MessageDocument, Messages, conversations
from shared.kernel.catalog import ARTICLES
from shared.kernel.clock import Clock
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import NotFound, UnprocessableContent
from shared.kernel.ids import ExternalId, Id
from shared.kernel.stored import Stored
from shared.knowledge.documents import ArticleDocument
from shared.knowledge.model import ArticleStatus

MESSAGE_LIMIT = 4000


class SendArticleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

    articleId: Id = Field(description="A published article.")
    id: ExternalId | None = Field(
        None,
        description="Your own message id (default: the article and its version, so the same "
        "version is sent once).",
    )


def article_message(doc: ArticleDocument) -> str:
    return f"{doc.title}\n\n{doc.text}"


async def send_article(
    store: DocumentStore,
    clock: Clock,
    principal: Principal,
    conversation_id: str,
    request: SendArticleRequest,
    correlation_id: str | None,
) -> tuple[MessageDocument, bool]:
    """(the message, True), or (the first message, False) for an id sent before."""
    # Whose conversation first (404 before anything about the body), as every conversation route.
    conversation = await conversations.read_or_none(store, conversation_id)
    if conversation is None or not (
        principal.has(Role.SUPERVISOR) or conversation.agent_id == principal.subject
    ):
        raise NotFound("no such conversation")
    doc = await Stored(store, ARTICLES, ArticleDocument).read_or_none(request.articleId, request.articleId)
    if doc is None or doc.status != ArticleStatus.PUBLISHED:
        raise UnprocessableContent(
            [{"field": "body.articleId", "message": "no published article has this id"}]
        )
    text = article_message(doc)
    if len(text) > MESSAGE_LIMIT:
        raise UnprocessableContent(
            [{"field": "body.articleId", "message": f"longer than a message ({MESSAGE_LIMIT} characters)"}],
            "The article is too long to send as one message.",
        )
    return await Messages(store, clock).post(
        principal,
        conversation_id,
        side="staff",
        text=text,
        visibility="patient",
        client_id=request.id or f"article:{doc.article_id}:v{doc.version}",
        correlation_id=correlation_id,
    )
