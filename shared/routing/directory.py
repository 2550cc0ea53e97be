"""Routing configuration: queues, the ordered routing rules and agents, as administrators set them,
and `place` — classification of an escalation onto a queue.

Layout in the `routing` container (partition key `/queueId`): each queue's partition holds its
settings document (`id` = "queue"), one seat per member agent and one waiting entry per queued
conversation, so everything an assignment decision reads is in one partition. The `_config`
partition holds the rules and an index of queue ids → priority number (the agent-driven path and
the sweep read it instead of querying across partitions). Agents live in `agents` (id = the
token's `sub`): the profile an administrator writes and the live state routing keeps (presence,
load); an admin write never resets the live state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from shared.kernel import lists
from shared.kernel.catalog import AGENTS, ROUTING
from shared.kernel.documents import Container, DocumentStore
from shared.kernel.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    UnprocessableContent,
    ValidationFailed,
)
from shared.kernel.etags import IfMatch, IfMatchFailed, check_if_match, stored_etag, version_etag
from shared.kernel.outbox import Aggregates
from shared.kernel.retry import retry
from shared.kernel.stored import Document, Stored
from shared.kernel.times import stamp
from shared.routing.documents import AgentDocument, QueueDocument, QueueIndex, RulesDocument
from shared.routing.model import (
    AgentProfile,
    QueueSettings,
    RoutingAttributes,
    RoutingRules,
)
from shared.routing.seats import refresh_queue_seats, sync_seats, with_presence_event
from shared.routing.settings import (
    CONFIG_PARTITION,
    DEFAULT_QUEUE,
    NO_RULES,
    QUEUE_DOC_ID,
    QUEUE_INDEX_ID,
    RULES_ID,
    by_priority,
    cache_clear,
    cache_get,
    cache_put,
    queue_settings,
)

C = TypeVar("C", bound=Document)


def agents_list() -> str:
    """The `agents` list: every registered agent by id (shared/kernel/lists.py walks it)."""
    return "agents"


class RoutingDirectory:
    def __init__(self, store: DocumentStore) -> None:
        self._store = store
        self._routing: Container = store.container(ROUTING)
        self._queues = Stored(store, ROUTING, QueueDocument)
        self._rules = Stored(store, ROUTING, RulesDocument)
        self._index = Stored(store, ROUTING, QueueIndex)
        self._agents = Aggregates(store, AGENTS, AgentDocument)

    # Queues ---------------------------------------------------------------------------------

    async def queue_index(self) -> dict[str, int]:
        index = await self._index.read_or_none(QUEUE_INDEX_ID, CONFIG_PARTITION)
        return {} if index is None else dict(index.queues)

    async def queue_doc(self, queue_id: str) -> QueueDocument | None:
        return await self._queues.read_or_none(QUEUE_DOC_ID, queue_id)

    async def queue(self, queue_id: str) -> QueueSettings:
        return await queue_settings(self._routing, queue_id)

    async def wrapup_seconds(self, queue_id: str) -> int:
        """The queue's wrap-up block (conversations' `WrapupPolicy`: closing asks it)."""
        return (await self.queue(queue_id)).wrapup_seconds

    async def put_queue(
        self, queue_id: str, settings: QueueSettings, now: datetime, *, if_match: IfMatch | None = None
    ) -> tuple[QueueDocument, bool]:
        """Create or replace a queue; returns (document, created). With `if_match` only over the
        version the caller read (412 otherwise)."""
        if queue_id == CONFIG_PARTITION:
            raise ValidationFailed([{"field": "queueId", "message": "is reserved"}])
        target = settings.overflow.target_queue_id
        if target is not None:
            if target == queue_id:
                raise ValidationFailed([{"field": "overflow.targetQueueId", "message": "is this queue"}])
            if target not in await self.queue_index() and target != DEFAULT_QUEUE:
                raise UnprocessableContent(
                    [{"field": "overflow.targetQueueId", "message": "is not a known queue"}]
                )
        existing = await self.queue_doc(queue_id)
        check_if_match(if_match, None if existing is None else stored_etag(existing), "queue")
        doc = QueueDocument(id=QUEUE_DOC_ID, queue_id=queue_id, settings=settings, updated_at=stamp(now))
        stored = await self._write_config(self._queues, doc, existing if if_match else None, "queue")
        cache_clear(self._routing)
        await self._update_index(lambda queues: queues.__setitem__(queue_id, settings.priority))
        if existing is not None and existing.settings.assignment_method != settings.assignment_method:
            await refresh_queue_seats(self._store, queue_id, settings)
        return stored, existing is None

    async def _write_config(self, documents: Stored[C], doc: C, read: C | None, what: str) -> C:
        """Upsert a settings document, or (`read`: the version an If-Match named) replace exactly
        that version: a change in between is a 412, never overwritten."""
        if read is None:
            return await documents.upsert(doc)
        doc = doc.over(read)
        try:
            return await documents.replace(doc)
        except (PreconditionFailed, NotFound):
            raise IfMatchFailed(f"The {what} changed since you read it (If-Match).") from None

    async def _update_index(self, change: Callable[[dict[str, int]], None]) -> None:
        async def step() -> None:
            index = await self._index.read_or_none(QUEUE_INDEX_ID, CONFIG_PARTITION)
            queues = {} if index is None else dict(index.queues)
            change(queues)
            if index is None:
                try:
                    await self._index.create(
                        QueueIndex(id=QUEUE_INDEX_ID, queue_id=CONFIG_PARTITION, queues=queues)
                    )
                except Conflict as error:  # lost the race to create: retry as a replace
                    raise PreconditionFailed("queue index created concurrently") from error
            else:
                await self._index.replace(index.changed(queues=queues))

        await retry(step)

    async def list_queues(self) -> list[dict[str, Any]]:
        index = await self.queue_index()
        out = []
        for queue_id in by_priority(index):
            doc = await self.queue_doc(queue_id)
            if doc is not None:
                out.append({"id": queue_id, **doc.settings.model_dump(mode="json", by_alias=True)})
        return out

    # Rules ----------------------------------------------------------------------------------

    async def rules(self, *, cached: bool = False) -> RoutingRules | None:
        """The rules; `cached` (every escalation classifies) allows a copy up to
        CONFIG_CACHE_SECONDS old."""
        if cached:
            hit = cache_get(self._routing, RULES_ID)
            if hit is not None:
                return hit if isinstance(hit, RoutingRules) else None
        doc = await self.rules_doc()
        if doc is None:
            cache_put(self._routing, RULES_ID, NO_RULES)
            return None
        return cache_put(self._routing, RULES_ID, doc.rules)

    async def rules_doc(self) -> RulesDocument | None:
        return await self._rules.read_or_none(RULES_ID, CONFIG_PARTITION)

    async def put_rules(
        self, rules: RoutingRules, now: datetime, *, if_match: IfMatch | None = None
    ) -> RulesDocument:
        """Replace the rules; returns the stored document. With `if_match` only over the version
        the caller read (412 otherwise)."""
        known = set(await self.queue_index()) | {DEFAULT_QUEUE}
        errors = [
            {"field": f"rules.{i}.queueId", "message": "is not a known queue"}
            for i, rule in enumerate(rules.rules)
            if rule.queue_id not in known
        ]
        if rules.fallback_queue_id not in known:
            errors.append({"field": "fallbackQueueId", "message": "is not a known queue"})
        if errors:
            raise UnprocessableContent(errors)
        existing = await self.rules_doc() if if_match else None
        check_if_match(
            if_match, None if existing is None else stored_etag(existing), "routing rules document"
        )
        doc = RulesDocument(id=RULES_ID, queue_id=CONFIG_PARTITION, rules=rules, updated_at=stamp(now))
        stored = await self._write_config(self._rules, doc, existing, "routing rules document")
        cache_clear(self._routing)
        return stored

    # Agents ---------------------------------------------------------------------------------

    async def agent_doc(self, agent_id: str) -> AgentDocument:
        return await self._agents.read(agent_id)

    async def put_agent(
        self, agent_id: str, profile: AgentProfile, now: datetime, *, if_match: IfMatch | None = None
    ) -> tuple[AgentDocument, bool]:
        """Create or replace an agent's profile, keeping presence and load; seats follow. Returns
        (document, created). `if_match` names a profile version (`profile_etag`): routing's own
        writes of presence and load never make it fail."""
        known = set(await self.queue_index()) | {DEFAULT_QUEUE}
        unknown = [q for q in profile.queues if q not in known]
        if unknown:
            raise UnprocessableContent(
                [
                    {"field": f"queues.{profile.queues.index(q)}", "message": "is not a known queue"}
                    for q in unknown
                ]
            )
        created = False
        old_queues: list[str] = []

        async def step() -> AgentDocument:
            nonlocal created, old_queues
            doc = await self._agents.read_or_none(agent_id)
            if doc is None:
                check_if_match(if_match, None, "agent")
                created = True
                try:
                    return await self._agents.create(
                        with_presence_event(new_agent_doc(agent_id, profile, now))
                    )
                except Conflict as error:
                    raise PreconditionFailed("agent created concurrently") from error
            check_if_match(if_match, profile_etag(doc), "agent's profile")
            created = False
            old_queues = list(doc.profile.queues)
            return await self._agents.replace(
                with_presence_event(
                    doc.changed(
                        profile=profile, profile_version=doc.profile_version + 1, updated_at=stamp(now)
                    )
                )
            )

        # Listed before it is written, every time (lists.py: a dangling entry is skipped).
        await lists.add(self._store, lists.entry(agents_list(), agent_id, agent_id))
        doc = await retry(step)
        await sync_seats(self._store, doc, removed=set(old_queues) - set(profile.queues))
        return doc, created

    async def load_agent(
        self, entry: lists.ListEntry, _: lists.Segment | None = None
    ) -> AgentDocument | None:
        """An agent for a list: re-read (presence and load change all the time)."""
        return await self._agents.read_or_none(entry.ref)

    async def list_agents(self, max_items: int, token: str | None) -> tuple[list[AgentDocument], str | None]:
        """Agents by id, a page at a time, from the `agents` list (one partition)."""
        return await lists.read_page(self._store, "agents", AGENT_SEGMENTS, token, max_items, self.load_agent)


AGENT_SEGMENTS = (lists.Segment("0", agents_list()),)


def profile_etag(agent: AgentDocument) -> str:
    """The entity-tag of an agent's profile: what an administrator's If-Match names."""
    return version_etag("profile", agent.profile_version)


def presence_etag(agent: AgentDocument) -> str:
    """The entity-tag of an agent's chosen presence: what the agent's own If-Match names."""
    return version_etag("presence", agent.presence_version)


def new_agent_doc(agent_id: str, profile: AgentProfile, now: datetime) -> AgentDocument:
    """A new agent: offline, holding nothing. `profileVersion` and `presenceVersion` version the
    parts people write; routing's live state changes without them. `chosenPresence` is what the
    agent chose by hand, `presence` what routing sees after load is applied."""
    return AgentDocument(
        id=agent_id, agent_id=agent_id, profile=profile, conversations={}, updated_at=stamp(now)
    )


async def place(store: DocumentStore, attrs: RoutingAttributes) -> Any:
    """Classify an escalation: the first matching rule's queue and skills, else the fallback queue;
    with no rules configured, the built-in `default` queue."""
    from shared.routing.engine import Placement, classify
    from shared.routing.model import URGENCY_PRIORITY

    rules = await RoutingDirectory(store).rules(cached=True)
    if rules is None:
        return Placement(DEFAULT_QUEUE, {}, URGENCY_PRIORITY[attrs.urgency], None)
    return classify(rules, attrs)


def agent_view(doc: AgentDocument) -> dict[str, Any]:
    """An agent as consoles see it: profile, presence and load (no internal bookkeeping)."""
    return {
        "id": doc.id,
        **doc.profile.model_dump(mode="json", by_alias=True),
        "presence": str(doc.presence),
        "chosenPresence": str(doc.chosen_presence),
        "used": doc.used,
        "conversations": sorted(doc.conversations),
        "lastAssignedAt": doc.last_assigned_at,
        "idleSince": doc.idle_since,
    }
