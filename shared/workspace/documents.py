"""The workspace capability's stored documents: agent scripts, all in the `scripts` partition of
the `scripts` container, and their index (`_index`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.kernel.stored import Document

SCOPE = "scripts"
INDEX_ID = "_index"


class ScriptDocument(Document):
    type: Literal["script"] = "script"
    scope: str = SCOPE
    name: str
    language: str
    steps: list[dict[str, Any]]
    applies_to: dict[str, Any] | None = None
    priority: int = 100
    updated_at: str
    updated_by: str


class IndexEntry(BaseModel):
    """What choosing and cycle checks need of a script, without reading it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)

    refs: list[str] = []
    queue_ids: list[str] | None = None
    languages: list[str] | None = None
    urgency: str | None = None
    priority: int = 100


class ScriptIndex(Document):
    type: Literal["script-index"] = "script-index"
    scope: str = SCOPE
    scripts: dict[str, IndexEntry] = {}
