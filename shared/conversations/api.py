"""The conversations capability's public module: the lifecycle, the conversation documents
(`conversations.read/replace/change`, the board's live list) and the model. Other packages
import from here only; conversations import no other capability but audit."""

from shared.conversations import store as conversations
from shared.conversations.lifecycle import Lifecycle, WrapupPolicy, is_supervisor
from shared.conversations.model import (
    HOLDS_CAPACITY,
    LIVE,
    AbandonAnswer,
    AssignRequest,
    CloseRequest,
    ConversationDocument,
    ConversationList,
    ConversationView,
    ForceCloseRequest,
    MessageRequest,
    Status,
    TransferRequest,
    Urgency,
    move,
    new_conversation,
)
from shared.conversations.notices import RETURN_GRACE
from shared.conversations.store import DEFAULT_QUEUE

conversation_patient = conversations.patient_of

__all__ = [
    "DEFAULT_QUEUE",
    "HOLDS_CAPACITY",
    "LIVE",
    "RETURN_GRACE",
    "AbandonAnswer",
    "AssignRequest",
    "CloseRequest",
    "ConversationDocument",
    "ConversationList",
    "ConversationView",
    "ForceCloseRequest",
    "Lifecycle",
    "MessageRequest",
    "Status",
    "TransferRequest",
    "Urgency",
    "WrapupPolicy",
    "conversation_patient",
    "conversations",
    "is_supervisor",
    "move",
    "new_conversation",
]
