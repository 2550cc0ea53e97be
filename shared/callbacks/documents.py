"""What the bot-callbacks consumer keeps, in the conversation's own partition of `conversations`
(`/conversationId`), so it lives and goes with the conversation and needs no query:

* `callbacks` (`CallbackState`): the conversation's `CallbackQueue` (shared/callbacks/schedule.py:
  what waits to be delivered, in order, with its attempts), the last event applied (its version
  and number: a redelivered or older event changes nothing), what the bot was last told of its
  place in the queue and when, when the place is looked at next, and when a wake-up message is
  already scheduled. Written only with If-Match (the ETag it was read with).
* `callback-dead:<webhook-id>` (`CallbackDeadLetter`): a callback given up on, with its reason,
  status and attempts; ids and the type only (the body may hold a message's text). `python -m ops
  callbacks` lists them.

Both expire (`ttl`): the state a month after its last change, a dead letter after a month.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Literal

from pydantic import Field

from shared.callbacks.schedule import CallbackQueue, DeadLetter, DeadReason
from shared.kernel.callbacks import CallbackType
from shared.kernel.stored import Document

STATE_ID = "callbacks"
DEAD_PREFIX = "callback-dead:"
STATE_TTL = timedelta(days=30)
DEAD_TTL = timedelta(days=30)


class CallbackState(Document):
    DROP_NONE: ClassVar[bool] = True

    type: Literal["callback-state"] = "callback-state"
    conversation_id: str
    # The last event applied, (version, n) of `<conversation id>:<version>.<n>`.
    applied_version: int = 0
    applied_n: int = 0
    queue: CallbackQueue = Field(default_factory=CallbackQueue)
    # What the bot was last told of its place (queue.position), and when.
    position: int | None = None
    out_of_hours: bool | None = None
    position_at: datetime | None = None
    # Position callbacks made by later looks (their webhook-ids count them).
    looks: int = 0
    # The place is looked at again then (None: the conversation no longer waits).
    look_at: datetime | None = None
    # A wake-up message is scheduled for then.
    wake_at: datetime | None = None
    ttl: int = int(STATE_TTL.total_seconds())


class CallbackDeadLetter(Document):
    DROP_NONE: ClassVar[bool] = True

    type: Literal["callback-dead-letter"] = "callback-dead-letter"
    conversation_id: str
    callback_id: str
    callback_type: CallbackType
    reason: DeadReason
    status: int | None = None
    attempts: int
    first_failure_at: datetime | None = None
    dead_lettered_at: datetime
    ttl: int = int(DEAD_TTL.total_seconds())

    @classmethod
    def of(cls, conversation_id: str, letter: DeadLetter) -> CallbackDeadLetter:
        return cls(
            id=DEAD_PREFIX + letter.id,
            conversation_id=conversation_id,
            callback_id=letter.id,
            callback_type=letter.type,
            reason=letter.reason,
            status=letter.status,
            attempts=letter.attempts,
            first_failure_at=letter.first_failure_at,
            dead_lettered_at=letter.dead_lettered_at,
        )
