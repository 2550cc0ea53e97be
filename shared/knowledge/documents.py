"""The knowledge capability's stored documents (`articles`, partition `/articleId`): the current
version of an article (id = the article id) and each version ever written (`<id>:v<n>`)."""

from __future__ import annotations

from typing import Literal

from shared.kernel.stored import Document


class ArticleFields(Document):
    article_id: str
    version: int
    title: str
    text: str
    language: str
    status: str
    tags: list[str] = []


class ArticleDocument(ArticleFields):
    type: Literal["article"] = "article"
    created_at: str
    updated_at: str
    updated_by: str


class ArticleVersion(ArticleFields):
    type: Literal["article-version"] = "article-version"
    written_at: str
    written_by: str


def version_id(article_id: str, version: int) -> str:
    return f"{article_id}:v{version}"
