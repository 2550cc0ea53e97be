"""Queue settings as every routing decision reads them: the `routing` container's layout names
and a per-worker cache of queue settings and rules (they change rarely and are read by every
decision; a change made through this worker applies at once, elsewhere within
CONFIG_CACHE_SECONDS)."""

from __future__ import annotations

import time
import weakref
from typing import Any

from shared.conversations.api import DEFAULT_QUEUE
from shared.kernel.documents import Container
from shared.kernel.errors import NotFound
from shared.kernel.stored import load
from shared.routing.documents import QueueDocument
from shared.routing.model import QueueSettings

__all__ = ["DEFAULT_QUEUE"]

CONFIG_PARTITION = "_config"
RULES_ID = "rules"
QUEUE_INDEX_ID = "queues"
QUEUE_DOC_ID = "queue"


CONFIG_CACHE_SECONDS = 5.0
_CONFIG_CACHE: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, Any]]] = weakref.WeakKeyDictionary()
NO_RULES = object()


def cache_get(container: Any, key: str) -> Any:
    entry = _CONFIG_CACHE.get(container, {}).get(key)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def cache_put(container: Any, key: str, value: Any) -> Any:
    _CONFIG_CACHE.setdefault(container, {})[key] = (time.monotonic() + CONFIG_CACHE_SECONDS, value)
    return value


def cache_clear(container: Any) -> None:
    _CONFIG_CACHE.pop(container, None)


def queue_settings_of(doc: QueueDocument | None) -> QueueSettings:
    return QueueSettings(name="Default queue") if doc is None else doc.settings


async def queue_settings(routing: Container, queue_id: str) -> QueueSettings:
    """A queue's settings; an unknown id (e.g. the built-in `default`) gets the defaults.
    Cached for CONFIG_CACHE_SECONDS per worker: every routing decision and seat sync reads them."""
    key = f"queue:{queue_id}"
    hit = cache_get(routing, key)
    if hit is not None:
        return hit
    try:
        doc: QueueDocument | None = load(QueueDocument, await routing.read(QUEUE_DOC_ID, queue_id))
    except NotFound:
        doc = None
    return cache_put(routing, key, queue_settings_of(doc))


def by_priority(index: dict[str, int]) -> list[str]:
    """Queue ids in serving order: priority number (smaller first), then id."""
    return sorted(index, key=lambda q: (index[q], q))
