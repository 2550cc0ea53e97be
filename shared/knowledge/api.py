"""The knowledge capability's public module: articles (versioned), search and suggestions."""

from shared.knowledge.articles import INDEX, Articles, Written, article_of
from shared.knowledge.finder import Finder, conversation_language, suggestion_text
from shared.knowledge.model import Article, ArticleRequest, ArticleStatus, SearchQuery, SearchResults
from shared.knowledge.sending import SendArticleRequest, send_article

__all__ = [
    "INDEX",
    "Article",
    "ArticleRequest",
    "ArticleStatus",
    "Articles",
    "Finder",
    "SearchQuery",
    "SearchResults",
    "SendArticleRequest",
    "Written",
    "article_of",
    "conversation_language",
    "send_article",
    "suggestion_text",
]
