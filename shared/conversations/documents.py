"""What lives beside a conversation in its partition of `conversations` (`/conversationId`): its
messages and the keys that make a sender's retry idempotent, and in `lookups` the pointer from a
bot's conversation to its current human conversation.

* A message (`msg:<seq, 10 digits>`): `seq` 1, 2, … per conversation without gaps (the
  conversation's `lastSeq` is bumped in the same transaction, conditional on its ETag), who wrote
  it, `visibility` (`patient`, or `internal` between staff), the text (PHI), when. `sortKey` is its
  id, so a page `?after=<seq>` is one indexed range of the partition.
* A message key (`key:<sha256(role, sender, sender's id)>` → `seq`): created in the same
  transaction as the message, so the same sender's id twice meets its key and answers the first
  message.
* A bot's conversation id is the bot's own (any text): it is never a document id or a query value.
  Its key is a hash scoped to the calling bot (`bot_key`); the first human conversation's id is
  derived from the key, and once a bot conversation has had a second one, the pointer
  `bot-conversation:<key>` in `lookups` names the current one.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.kernel.stored import Document

Visibility = Literal["patient", "internal"]
Role = Literal["patient", "bot", "agent", "supervisor", "system"]
MESSAGE_PREFIX = "msg:"
# Sorts right after every "msg:<digits>" id: the end of the message range.
MESSAGE_RANGE_END = "msg;"


def message_id(seq: int) -> str:
    return f"{MESSAGE_PREFIX}{seq:010d}"


def message_key_id(role: str, sender: str, client_id: str) -> str:
    return "key:" + hashlib.sha256(f"{role}\n{sender}\n{client_id}".encode()).hexdigest()


class Author(BaseModel):
    """Who wrote a message: a role, and for people their id (and staff's display name)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    role: Role
    id: str | None = None
    name: str | None = None


class MessageDocument(Document):
    DROP_NONE: ClassVar[bool] = True

    type: Literal["message"] = "message"
    conversation_id: str
    seq: int
    client_id: str | None = None
    author: Author = Field(alias="from")
    visibility: Visibility
    text: str
    at: str
    sort_key: str
    ttl: int | None = None

    def view(self) -> dict[str, Any]:
        """The message as PRODUCT.md shapes it (`id`: the sender's own id, else ours)."""
        return {
            "seq": self.seq,
            "id": self.client_id or self.id,
            "from": self.author.model_dump(exclude_none=True),
            "visibility": self.visibility,
            "text": self.text,
            "at": self.at,
        }


class MessageKey(Document):
    DROP_NONE: ClassVar[bool] = True

    type: Literal["message-key"] = "message-key"
    conversation_id: str
    seq: int
    ttl: int | None = None


def new_message(
    conversation_id: str,
    seq: int,
    *,
    author: Author,
    visibility: Visibility,
    text: str,
    at: str,
    client_id: str | None = None,
) -> MessageDocument:
    mid = message_id(seq)
    return MessageDocument(
        id=mid,
        conversation_id=conversation_id,
        seq=seq,
        client_id=client_id,
        author=author,
        visibility=visibility,
        text=text,
        at=at,
        sort_key=mid,
    )


# A bot's conversations --------------------------------------------------------------------------


def _sha(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def bot_key(scope: str, bot_conversation_id: str) -> str:
    """The bot conversation's key: a hash of the calling bot (`scope`) and the bot's own id, so
    two bots' ids never meet and the raw id is never a document id."""
    return _sha(scope, bot_conversation_id)


def conversation_id_for(key: str, generation: int = 1) -> str:
    """The id of a bot conversation's `generation`-th human conversation (1: the first)."""
    return "c-" + (_sha(key) if generation == 1 else _sha(key, str(generation)))[:32]


def pointer_id(key: str) -> str:
    return f"bot-conversation:{key}"


class BotConversationPointer(Document):
    """Written once a bot conversation gets a second human conversation (the first is found from
    the key alone): which one is current, and the one before it."""

    type: Literal["bot-conversation"] = "bot-conversation"
    conversation_id: str
    generation: int
    previous_conversation_id: str | None = None
