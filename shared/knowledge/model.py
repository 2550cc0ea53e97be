"""Knowledge articles as the API reads and writes them, and search results."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.kernel.ids import Id
from shared.kernel.text import Line, Text
from shared.kernel.times import InstantText
from shared.patients.api import LanguageTag


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


Tag = Annotated[Line, Field(min_length=1, max_length=50)]


class ArticleRequest(_Strict):
    """`PUT /api/knowledge/articles/{articleId}`: every write of a changed article is a new version;
    only `published` articles are found by search and suggestions."""

    title: Line = Field(min_length=1, max_length=200)
    body: Text = Field(min_length=1, max_length=20_000)
    language: LanguageTag
    status: ArticleStatus
    tags: list[Tag] = Field(default_factory=list, max_length=20)


class Article(ArticleRequest):
    id: Id
    version: int = Field(ge=1, description="1 for the first write; each change adds one.")
    updatedAt: InstantText
    updatedBy: str = Field(description="Who wrote this version (their staff id).")


class SearchQuery(_Strict):
    q: Text = Field(min_length=1, max_length=500, description="The question, in any words.")
    language: LanguageTag = Field("en", description="Articles in this language (its family: en-GB is en).")


class Found(BaseModel):
    id: str
    title: str
    score: float = Field(
        ge=0,
        le=1,
        description="Relevance, 1 for the best hit (embedded: bm25 relative to the best; Cosmos DB: "
        "derived from the rank, 1/rank).",
    )
    matched: list[str] = Field(description="The query's words the article holds.")


class SearchResults(BaseModel):
    items: list[Found]
