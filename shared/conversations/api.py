"""The conversations capability's public module: the lifecycle, messages, the conversation
documents (`conversations.read/replace/change`, the board's live list), the bot conversations'
keys, transcripts and the model. Other packages import from here only; conversations import no
other capability but audit."""

from shared.conversations import store as conversations
from shared.conversations.bots import bot_scope, conversation_key, current_conversation
from shared.conversations.documents import (
    Author,
    BotConversationPointer,
    MessageDocument,
    bot_key,
    conversation_id_for,
    message_id,
    pointer_id,
)
from shared.conversations.documents import message_id as message_document_id
from shared.conversations.lifecycle import Lifecycle, WrapupPolicy, is_supervisor
from shared.conversations.merge import listed_conversations, move_patient_conversations
from shared.conversations.messages import (
    TRANSCRIPT_PAGE,
    Messages,
    messages_after,
    patient_texts,
    transcript_messages,
)
from shared.conversations.messages import append as append_message
from shared.conversations.model import (
    HOLDS_CAPACITY,
    LIVE,
    AbandonAnswer,
    AssignRequest,
    BotMessageRequest,
    CloseRequest,
    ConversationDetail,
    ConversationDocument,
    ConversationList,
    ConversationView,
    EndAnswer,
    ForceCloseRequest,
    MessageRequest,
    PatientConversationList,
    PatientConversationView,
    Status,
    TransferRequest,
    Urgency,
    move,
    new_conversation,
)
from shared.conversations.notices import RETURN_GRACE
from shared.conversations.store import DEFAULT_QUEUE
from shared.conversations.transcripts import Transcripts, TranscriptView

conversation_patient = conversations.patient_of

__all__ = [
    "DEFAULT_QUEUE",
    "HOLDS_CAPACITY",
    "LIVE",
    "RETURN_GRACE",
    "TRANSCRIPT_PAGE",
    "AbandonAnswer",
    "AssignRequest",
    "Author",
    "BotConversationPointer",
    "BotMessageRequest",
    "CloseRequest",
    "ConversationDetail",
    "ConversationDocument",
    "ConversationList",
    "ConversationView",
    "EndAnswer",
    "ForceCloseRequest",
    "Lifecycle",
    "MessageDocument",
    "MessageRequest",
    "Messages",
    "PatientConversationList",
    "PatientConversationView",
    "Status",
    "TranscriptView",
    "Transcripts",
    "TransferRequest",
    "Urgency",
    "WrapupPolicy",
    "append_message",
    "bot_key",
    "bot_scope",
    "conversation_id_for",
    "conversation_key",
    "conversation_patient",
    "conversations",
    "current_conversation",
    "is_supervisor",
    "listed_conversations",
    "message_document_id",
    "message_id",
    "messages_after",
    "move",
    "move_patient_conversations",
    "new_conversation",
    "patient_texts",
    "pointer_id",
    "transcript_messages",
]
