"""Routing's stored documents. In `agents` (partition `/agentId`): one per agent (an aggregate:
its changes write `agent.presence` events through the outbox). In `routing`
(partition `/queueId`), per queue: its settings (`queue`), a seat per member agent
(`seat:<agentId>`), a waiting entry per queued conversation (`wait:<conversationId>`) and the
backlog lease (`server`); in the `_config` partition the rules (`rules`) and the queue index
(`queues`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from shared.kernel.outbox import Aggregate
from shared.kernel.stored import Document
from shared.routing.model import AgentProfile, Presence, QueueSettings, RoutingRules


class QueueDocument(Document):
    type: Literal["queue"] = "queue"
    queue_id: str
    settings: QueueSettings
    updated_at: str | None = None


class RulesDocument(Document):
    type: Literal["rules"] = "rules"
    queue_id: str
    rules: RoutingRules
    updated_at: str | None = None


class QueueIndex(Document):
    """Queue id → priority number: what the agent-driven path and the sweep read instead of
    querying across partitions."""

    type: Literal["queue-index"] = "queue-index"
    queue_id: str
    queues: dict[str, int]


class Lease(Document):
    """The backlog lease of a queue: one worker serves its backlog at a time (against the herd
    only; the ETags keep the invariants)."""

    type: Literal["lease"] = "lease"
    queue_id: str
    holder: str | None = None
    until: str | None = None


class AgentDocument(Aggregate):
    """An agent: the profile administrators write (`profileVersion`), the presence the agent
    chose (`presenceVersion`), and the live state routing keeps: the presence after load, the
    conversations held with their units, `used`, and the revision seats are ordered by. The ETag
    of this document is what keeps an agent within capacity."""

    PARTITION_FIELD: ClassVar[str] = "agentId"

    type: Literal["agent"] = "agent"
    agent_id: str
    profile: AgentProfile
    profile_version: int = 1
    presence_version: int = 0
    chosen_presence: Presence = Presence.OFFLINE
    presence: Presence = Presence.OFFLINE
    used: int = 0
    conversations: dict[str, int]
    last_assigned_at: str | None = None
    idle_since: str | None = None
    updated_at: str | None = None
    rev: int = 0


class SeatDocument(Document):
    """A copy of a member agent's presence and load in the queue's partition, keyed by `sortKey`
    in the queue's assignment order (no key: the agent can take no work now)."""

    DROP_NONE: ClassVar[bool] = True

    type: Literal["seat"] = "seat"
    queue_id: str
    agent_id: str
    presence: Presence
    capacity: int
    used: int
    skills: dict[str, int]
    languages: list[str]
    last_assigned_at: str | None = None
    idle_since: str | None = None
    rev: int = 0
    sort_key: str | None = None


class WaitingEntry(Document):
    """A queued conversation in its queue's serving order (`sortKey`)."""

    type: Literal["waiting"] = "waiting"
    queue_id: str
    conversation_id: str
    priority: int
    enqueued_at: str
    language: str
    skills: dict[str, int]
    excluded: list[str]
    avoided: list[str]
    units: int
    sort_key: str
