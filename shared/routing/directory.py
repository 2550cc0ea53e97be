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
from typing import Any

from shared.kernel import lists
from shared.kernel.catalog import AGENTS, ROUTING
from shared.kernel.documents import Container, DocumentStore, Item
from shared.kernel.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    UnprocessableContent,
    ValidationFailed,
)
from shared.kernel.etags import IfMatch, IfMatchFailed, check_if_match, stored_etag, version_etag
from shared.kernel.retry import retry
from shared.kernel.times import stamp
from shared.routing.model import (
    AgentProfile,
    Presence,
    QueueSettings,
    RoutingAttributes,
    RoutingRules,
)
from shared.routing.seats import refresh_queue_seats, sync_seats
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


def agents_list() -> str:
    """The `agents` list: every registered agent by id (shared/kernel/lists.py walks it)."""
    return "agents"


class RoutingDirectory:
    def __init__(self, store: DocumentStore) -> None:
        self._store = store
        self._routing: Container = store.container(ROUTING)
        self._agents: Container = store.container(AGENTS)

    # Queues ---------------------------------------------------------------------------------

    async def queue_index(self) -> dict[str, int]:
        try:
            doc = await self._routing.read(QUEUE_INDEX_ID, CONFIG_PARTITION)
        except NotFound:
            return {}
        return dict(doc.get("queues", {}))

    async def queue_doc(self, queue_id: str) -> Item | None:
        try:
            return await self._routing.read(QUEUE_DOC_ID, queue_id)
        except NotFound:
            return None

    async def queue(self, queue_id: str) -> QueueSettings:
        return await queue_settings(self._routing, queue_id)

    async def wrapup_seconds(self, queue_id: str) -> int:
        """The queue's wrap-up block (conversations' `WrapupPolicy`: closing asks it)."""
        return (await self.queue(queue_id)).wrapup_seconds

    async def put_queue(
        self, queue_id: str, settings: QueueSettings, now: datetime, *, if_match: IfMatch | None = None
    ) -> tuple[Item, bool]:
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
        doc: Item = {
            "id": QUEUE_DOC_ID,
            "queueId": queue_id,
            "type": "queue",
            "settings": settings.model_dump(mode="json", by_alias=True),
            "updatedAt": stamp(now),
        }
        stored = await self._write_config(doc, existing if if_match else None, "queue")
        cache_clear(self._routing)
        await self._update_index(lambda queues: queues.__setitem__(queue_id, settings.priority))
        if existing is not None and existing["settings"].get("assignmentMethod") != doc["settings"].get(
            "assignmentMethod"
        ):
            await refresh_queue_seats(self._routing, self._agents, queue_id, settings)
        return stored, existing is None

    async def _write_config(self, doc: Item, read: Item | None, what: str) -> Item:
        """Upsert a settings document, or (`read`: the version an If-Match named) replace exactly
        that version: a change in between is a 412, never overwritten."""
        if read is None:
            return await self._routing.upsert(doc)
        try:
            return await self._routing.replace(doc, etag=read["_etag"])
        except (PreconditionFailed, NotFound):
            raise IfMatchFailed(f"The {what} changed since you read it (If-Match).") from None

    async def _update_index(self, change: Callable[[dict[str, int]], None]) -> None:
        async def step() -> None:
            try:
                doc = await self._routing.read(QUEUE_INDEX_ID, CONFIG_PARTITION)
                etag: str | None = doc["_etag"]
            except NotFound:
                doc, etag = {"id": QUEUE_INDEX_ID, "queueId": CONFIG_PARTITION, "queues": {}}, None
            queues = dict(doc.get("queues", {}))
            change(queues)
            fresh = {**doc, "queues": queues}
            if etag is None:
                try:
                    await self._routing.create(fresh)
                except Conflict as error:  # lost the race to create: retry as a replace
                    raise PreconditionFailed("queue index created concurrently") from error
            else:
                await self._routing.replace(fresh, etag=etag)

        await retry(step)

    async def list_queues(self) -> list[dict[str, Any]]:
        index = await self.queue_index()
        out = []
        for queue_id in by_priority(index):
            doc = await self.queue_doc(queue_id)
            if doc is not None:
                out.append({"id": queue_id, **doc["settings"]})
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
        return cache_put(self._routing, RULES_ID, RoutingRules.model_validate(doc["rules"]))

    async def rules_doc(self) -> Item | None:
        try:
            return await self._routing.read(RULES_ID, CONFIG_PARTITION)
        except NotFound:
            return None

    async def put_rules(self, rules: RoutingRules, now: datetime, *, if_match: IfMatch | None = None) -> Item:
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
        doc = {
            "id": RULES_ID,
            "queueId": CONFIG_PARTITION,
            "type": "rules",
            "rules": rules.model_dump(mode="json", by_alias=True, exclude_none=True),
            "updatedAt": stamp(now),
        }
        stored = await self._write_config(doc, existing, "routing rules document")
        cache_clear(self._routing)
        return stored

    # Agents ---------------------------------------------------------------------------------

    async def agent_doc(self, agent_id: str) -> Item:
        return await self._agents.read(agent_id, agent_id)

    async def put_agent(
        self, agent_id: str, profile: AgentProfile, now: datetime, *, if_match: IfMatch | None = None
    ) -> tuple[Item, bool]:
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

        async def step() -> Item:
            nonlocal created, old_queues
            profile_json = profile.model_dump(mode="json", by_alias=True)
            try:
                doc = await self._agents.read(agent_id, agent_id)
            except NotFound:
                check_if_match(if_match, None, "agent")
                created = True
                fresh = new_agent_doc(agent_id, profile_json, now)
                try:
                    return await self._agents.create(fresh)
                except Conflict as error:
                    raise PreconditionFailed("agent created concurrently") from error
            check_if_match(if_match, profile_etag(doc), "agent's profile")
            created = False
            old_queues = list(doc["profile"].get("queues", []))
            version = int(doc.get("profileVersion", 0)) + 1
            return await self._agents.replace(
                {**doc, "profile": profile_json, "profileVersion": version, "updatedAt": stamp(now)},
                etag=doc["_etag"],
            )

        # Listed before it is written, every time (lists.py: a dangling entry is skipped).
        await lists.add(self._store, lists.entry(agents_list(), agent_id, agent_id))
        doc = await retry(step)
        await sync_seats(self._routing, doc, removed=set(old_queues) - set(profile.queues))
        return doc, created

    async def load_agent(self, entry: Item, _: lists.Segment | None = None) -> Item | None:
        """An agent for a list: re-read (presence and load change all the time)."""
        return await lists.read_or_none(self._store, AGENTS, entry["ref"])

    async def list_agents(self, max_items: int, token: str | None) -> tuple[list[Item], str | None]:
        """Agents by id, a page at a time, from the `agents` list (one partition)."""
        return await lists.read_page(self._store, "agents", AGENT_SEGMENTS, token, max_items, self.load_agent)


AGENT_SEGMENTS = (lists.Segment("0", agents_list()),)


def profile_etag(agent: Item) -> str:
    """The entity-tag of an agent's profile: what an administrator's If-Match names."""
    return version_etag("profile", int(agent.get("profileVersion", 0)))


def presence_etag(agent: Item) -> str:
    """The entity-tag of an agent's chosen presence: what the agent's own If-Match names."""
    return version_etag("presence", int(agent.get("presenceVersion", 0)))


def new_agent_doc(agent_id: str, profile: dict[str, Any], now: datetime) -> Item:
    return {
        "id": agent_id,
        "type": "agent",
        "profile": profile,
        # Versions of the parts people write; routing's live state below changes without them.
        "profileVersion": 1,
        "presenceVersion": 0,
        # What the agent chose by hand; `presence` is what routing sees after load is applied.
        "chosenPresence": str(Presence.OFFLINE),
        "presence": str(Presence.OFFLINE),
        "used": 0,
        "conversations": {},
        "lastAssignedAt": None,
        "idleSince": None,
        "updatedAt": stamp(now),
    }


async def place(store: DocumentStore, attrs: RoutingAttributes) -> Any:
    """Classify an escalation: the first matching rule's queue and skills, else the fallback queue;
    with no rules configured, the built-in `default` queue."""
    from shared.routing.engine import Placement, classify
    from shared.routing.model import URGENCY_PRIORITY

    rules = await RoutingDirectory(store).rules(cached=True)
    if rules is None:
        return Placement(DEFAULT_QUEUE, {}, URGENCY_PRIORITY[attrs.urgency], None)
    return classify(rules, attrs)


def agent_view(doc: Item) -> dict[str, Any]:
    """An agent as consoles see it: profile, presence and load (no internal bookkeeping)."""
    return {
        "id": doc["id"],
        **doc["profile"],
        "presence": doc.get("presence"),
        "chosenPresence": doc.get("chosenPresence"),
        "used": doc.get("used", 0),
        "conversations": sorted(doc.get("conversations", {})),
        "lastAssignedAt": doc.get("lastAssignedAt"),
        "idleSince": doc.get("idleSince"),
    }
