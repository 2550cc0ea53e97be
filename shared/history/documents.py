"""The history's one document kind: an event envelope filed under its day."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from shared.kernel.stored import Document


def history_sort_key(at: str, aggregate_id: str, version: int, n: int) -> str:
    """Orders a day's events by `at`, then each aggregate's events in the order they were written
    (two events of one write share `at`); fixed-width numbers, so the key sorts as text."""
    return f"{at}|{aggregate_id}|{version:012d}|{n:04d}"


class HistoryEvent(Document):
    """One event (id = its message id `<aggregate id>:<version>.<n>`) in the partition of its
    day (`YYYY-MM-DD` of `at`, UTC). Immutable: created once, never replaced."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["history-event"] = "history-event"
    day: str
    sort_key: str
    event_type: str
    aggregate_id: str
    version: int
    n: int
    at: str
    data: dict[str, Any] = {}

    def envelope(self) -> dict[str, Any]:
        """The event as consumers of the topic receive it."""
        return {
            "id": self.id,
            "type": self.event_type,
            "aggregateId": self.aggregate_id,
            "version": self.version,
            "at": self.at,
            "data": self.data,
        }
