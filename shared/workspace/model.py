"""Agent scripts as administrators write them and agents read them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.conversations.api import Urgency
from shared.kernel.ids import Id
from shared.kernel.text import Text
from shared.kernel.times import InstantText
from shared.patients.api import LanguageTag


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class TextStep(_Strict):
    """Words for the agent to say or do. Placeholders: `{patient.firstName}` (the given name, else
    the first word of the name), `{patient.name}`, `{agent.name}`, `{queue.name}`; `{{` and `}}`
    are literal braces. Any other placeholder is refused."""

    type: Literal["text"]
    text: Text = Field(min_length=1, max_length=4000)


class ActionStep(_Strict):
    """A button the console shows: open the booking view, send an article (`articleId`), consult a
    provider."""

    type: Literal["action"]
    action: Literal["open-booking", "send-article", "consult"]
    articleId: Id | None = None

    @model_validator(mode="after")
    def _article(self) -> ActionStep:
        if (self.action == "send-article") != (self.articleId is not None):
            raise ValueError("articleId goes with the send-article action, and only with it")
        return self


class ScriptStep(_Strict):
    """Another script's steps, expanded in place (it may be defined later)."""

    type: Literal["script"]
    scriptId: Id


Step = Annotated[TextStep | ActionStep | ScriptStep, Field(discriminator="type")]


class AppliesTo(_Strict):
    """Which conversations a script is for: every criterion given must match (no criteria: all)."""

    queueIds: list[Id] | None = Field(None, min_length=1, max_length=50)
    languages: list[LanguageTag] | None = Field(None, min_length=1, max_length=20)
    urgency: Urgency | None = None


class ScriptRequest(_Strict):
    """`PUT /api/manage/scripts/{scriptId}`. Of the scripts whose `appliesTo` matches a
    conversation, the most specific (most criteria) is chosen, then the lower `priority`, then the
    smaller id."""

    name: Text = Field(min_length=1, max_length=200)
    language: LanguageTag
    steps: list[Step] = Field(min_length=1, max_length=100)
    appliesTo: AppliesTo | None = None
    priority: int = Field(100, ge=0, le=10_000)


class Script(ScriptRequest):
    id: str
    updatedAt: InstantText


class FilledStep(BaseModel):
    type: Literal["text", "action"]
    text: str | None = None
    action: Literal["open-booking", "send-article", "consult"] | None = None
    articleId: str | None = None
    scriptId: str = Field(description="The script this step comes from (a sub-script's own id).")


class ConversationScript(BaseModel):
    """The script for a conversation: sub-scripts expanded, placeholders filled."""

    scriptId: str
    name: str
    language: str
    steps: list[FilledStep]
    missing: list[str] = Field(
        default_factory=list, description="Sub-scripts referred to but not defined (yet): skipped."
    )
