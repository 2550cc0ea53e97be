"""A bot's conversation, as the bot names it: its key (scoped to the calling bot, so two bots' ids
never meet and the raw id is never a document id) and the human conversation it leads to now (the
first one's id is derived from the key; the pointer `bot-conversation:<key>` names a later one)."""

from __future__ import annotations

from shared.auth.principal import Principal
from shared.conversations import store as conversations
from shared.conversations.documents import BotConversationPointer, bot_key, conversation_id_for, pointer_id
from shared.conversations.model import ConversationDocument
from shared.kernel.catalog import LOOKUPS
from shared.kernel.documents import DocumentStore
from shared.kernel.errors import NotFound
from shared.kernel.stored import Stored


def bot_scope(principal: Principal) -> str:
    """Whose bot conversation ids these are: the calling bot (bearer: the bot principal; a signed
    delivery: the holder of the webhook secret)."""
    return f"{principal.provider}:{principal.subject}"


def conversation_key(principal: Principal, bot_conversation_id: str) -> str:
    return bot_key(bot_scope(principal), bot_conversation_id)


async def current_conversation(
    store: DocumentStore, principal: Principal, bot_conversation_id: str
) -> ConversationDocument:
    """The human conversation the calling bot's conversation leads to now; 404 when it has none
    (another bot's conversation id is none of this bot's)."""
    key = conversation_key(principal, bot_conversation_id)
    pointer = await Stored(store, LOOKUPS, BotConversationPointer).read_or_none(pointer_id(key))
    conversation_id = pointer.conversation_id if pointer is not None else conversation_id_for(key)
    doc = await conversations.read_or_none(store, conversation_id)
    if doc is None:
        raise NotFound("no such conversation")
    return doc
