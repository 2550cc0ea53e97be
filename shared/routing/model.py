"""What administrators configure for routing: queues, the ordered routing rules and agents.

The request shapes are fixed by the consoles (issue 4); every field but a queue's and an agent's
`name` has a default, so a minimal `{"name": "General"}` is a working queue.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.conversations.api import LIVE, Status, Urgency
from shared.kernel.ids import Id
from shared.kernel.text import Line, Text
from shared.kernel.times import InstantText, TimeZoneName
from shared.kernel.week import ClockTime, Weekday

FALLBACK_LANGUAGE = "en"

Identifier = Id
SkillName = Annotated[Line, Field(min_length=1, max_length=64)]
SkillLevel = Annotated[int, Field(ge=1, le=10)]
Skills = dict[SkillName, SkillLevel]
Language = Annotated[Line, Field(min_length=2, max_length=35)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, serialize_by_alias=True, defer_build=True
    )


# Conversation priority inside a queue: higher is served first.
URGENCY_PRIORITY = {Urgency.EMERGENCY: 3, Urgency.URGENT: 2, Urgency.ROUTINE: 1}


class AssignmentMethod(StrEnum):
    HIGHEST_CAPACITY = "highest-capacity"
    ROUND_ROBIN = "round-robin"
    MOST_IDLE = "most-idle"


class SkillMatch(StrEnum):
    EXACT = "exact"
    CLOSEST = "closest"
    EXACT_THEN_CLOSEST = "exact-then-closest"


class OperatingHours(_Model):
    """Open hours in the queue's own time zone; a weekday left out is closed."""

    time_zone: TimeZoneName = Field("UTC", alias="timeZone")
    weekly_hours: dict[Weekday, list[tuple[ClockTime, ClockTime]]] = Field(alias="weeklyHours")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> OperatingHours:
        for day, ranges in self.weekly_hours.items():
            for start, end in ranges:
                if start >= end:
                    raise ValueError(f"{day}: a range must start before it ends ({start}-{end})")
        return self


class OverflowAction(StrEnum):
    TRANSFER = "transfer"
    END = "end"


class Overflow(_Model):
    """What happens when a queue is too full or a conversation waited too long (unified routing's
    overflow rules): transfer to another queue, or end with a message to the patient."""

    max_waiting: int | None = Field(None, alias="maxWaiting", ge=0)
    max_wait_seconds: int | None = Field(None, alias="maxWaitSeconds", ge=1)
    action: OverflowAction = OverflowAction.END
    target_queue_id: Identifier | None = Field(None, alias="targetQueueId")
    message: Text | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _target_for_transfer(self) -> Overflow:
        if self.action is OverflowAction.TRANSFER and not self.target_queue_id:
            raise ValueError("a transfer overflow needs targetQueueId")
        return self


class QueueSettings(_Model):
    name: Line = Field(min_length=1, max_length=200)
    # Smaller number = served first, as in unified routing.
    priority: int = Field(100, ge=0, le=10_000)
    assignment_method: AssignmentMethod = Field(AssignmentMethod.HIGHEST_CAPACITY, alias="assignmentMethod")
    skill_match: SkillMatch = Field(SkillMatch.EXACT, alias="skillMatch")
    exact_match_timeout_seconds: int = Field(60, alias="exactMatchTimeoutSeconds", ge=0, le=86_400)
    required_skills: Skills = Field(default_factory=dict, alias="requiredSkills")
    operating_hours: OperatingHours | None = Field(None, alias="operatingHours")
    overflow: Overflow = Field(default_factory=Overflow)
    accept_timeout_seconds: int = Field(60, alias="acceptTimeoutSeconds", ge=5, le=3600)
    wrapup_seconds: int = Field(60, alias="wrapupSeconds", ge=0, le=3600)
    service_level_seconds: int = Field(60, alias="serviceLevelSeconds", ge=1, le=86_400)
    capacity_units: int = Field(1, alias="capacityUnits", ge=1, le=100)


class RuleCondition(_Model):
    """Every listed attribute must match; a list matches any of its values; empty matches all."""

    urgency: list[Urgency] | None = None
    specialty: list[Annotated[Line, Field(max_length=64)]] | None = Field(None, max_length=100)
    language: list[Language] | None = Field(None, max_length=100)
    context: (
        dict[Annotated[Line, Field(max_length=64)], Annotated[Line, Field(max_length=1000)] | int] | None
    ) = Field(None, max_length=50)


class RoutingRule(_Model):
    when: RuleCondition = Field(default_factory=RuleCondition)
    queue_id: Identifier = Field(alias="queueId")
    skills: Skills = Field(default_factory=dict)


class RoutingRules(_Model):
    rules: list[RoutingRule] = Field(default_factory=list, max_length=500)
    fallback_queue_id: Identifier = Field(alias="fallbackQueueId")

    def queue_ids(self) -> set[str]:
        return {rule.queue_id for rule in self.rules} | {self.fallback_queue_id}


class AgentProfile(_Model):
    name: Line = Field(min_length=1, max_length=200)
    skills: Skills = Field(default_factory=dict)
    languages: list[Language] = Field(default_factory=lambda: [FALLBACK_LANGUAGE], max_length=50)
    capacity: int = Field(3, ge=1, le=100)
    queues: list[Identifier] = Field(default_factory=list, max_length=100)


class Presence(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    DND = "dnd"
    AWAY = "away"
    OFFLINE = "offline"


# Presences that may receive work; dnd is set by load when an agent is full, away/offline by hand.
ROUTABLE = frozenset({Presence.AVAILABLE, Presence.BUSY})


class PresenceChange(_Model):
    status: Presence


class QueueView(QueueSettings):
    """A queue as `GET /api/manage/queues` lists it: its id and settings."""

    id: str


class QueueList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[QueueView] = Field(description="Every queue, smallest priority number first.")


class AgentView(BaseModel):
    """An agent as consoles see it: the profile, presence and load (routing's bookkeeping left out)."""

    model_config = ConfigDict(defer_build=True)

    id: str
    name: str
    skills: dict[str, int] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    capacity: int
    queues: list[str] = Field(default_factory=list)
    presence: Presence | None = Field(None, description="Effective presence (load adjusts it).")
    chosenPresence: Presence | None = Field(None, description="What the agent chose.")
    used: int = Field(0, description="Capacity units in use.")
    conversations: list[str] = Field(default_factory=list, description="Conversations holding capacity.")
    lastAssignedAt: InstantText | None = None
    idleSince: InstantText | None = None


class AgentList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[AgentView]
    continuationToken: str | None = Field(None, description="Absent on the last page.")


class RoutingAttributes(_Model):
    """What classification looks at: from the bot's triage, the patient's language and context."""

    urgency: Urgency = Urgency.ROUTINE
    specialty: str | None = None
    language: str = FALLBACK_LANGUAGE
    context: dict[str, str | int] = Field(default_factory=dict)


class AgentListQuery(_Model):
    max_items: int = Field(100, alias="maxItems", ge=1, le=1000)
    continuation_token: str | None = Field(None, alias="continuationToken", max_length=2000)


class BoardQuery(_Model):
    status: str | None = Field(None, description="Comma-separated live statuses; default: every live status")
    max_items: int = Field(100, alias="maxItems", ge=1, le=1000)
    continuation_token: str | None = Field(None, alias="continuationToken", max_length=4000)

    def statuses(self) -> list[str] | None:
        if not self.status:
            return None
        wanted = [s.strip() for s in self.status.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in Status.__members__.values()]
        if unknown:
            raise ValueError(f"unknown status {unknown[0]!r}")
        ended = [s for s in wanted if s not in LIVE]
        if ended:
            raise ValueError(f"{ended[0]!r} is not a live status: the board lists live conversations")
        return wanted


# ---- the supervisor's live board (shapes of Board.page; documented, served as built) ----------


class _BoardModel(BaseModel):
    model_config = ConfigDict(defer_build=True)


class Unassignable(_BoardModel):
    reason: Literal[
        "all-agents-declined",
        "no-agent-with-language",
        "no-agent-with-capacity",
        "no-agent-with-skills",
        "no-agents",
        "no-eligible-agent",
    ] = Field(description="Why no agent of the queue may ever take it as things stand")


class BoardConversation(_BoardModel):
    """A live conversation on the board: ids, routing attributes and stamps, never PHI."""

    id: Id
    status: Status
    queueId: Id | None = None
    agentId: Id | None = None
    priority: int | None = None
    patientId: Id | None = None
    urgency: Urgency | None = None
    specialty: str | None = None
    language: str | None = None
    channel: str | None = None
    transfers: int | None = None
    createdAt: InstantText | None = None
    escalatedAt: InstantText | None = None
    queuedAt: InstantText | None = None
    offeredAt: InstantText | None = None
    acceptedAt: InstantText | None = None
    firstAgentResponseAt: InstantText | None = None
    wrapupAt: InstantText | None = None
    closedAt: InstantText | None = None
    abandonedAt: InstantText | None = None
    offerExpiresAt: InstantText | None = None
    unassignable: Unassignable | None = Field(
        None, description="A waiting conversation no agent of its queue may take (see the operation)."
    )
    outOfHours: bool | None = Field(None, description="Waiting in a queue closed by its operating hours.")


class QueueSummary(_BoardModel):
    queueId: Id
    depth: int = Field(description="Conversations waiting (up to 1000 counted).")
    depthIsLowerBound: bool = Field(description="More than `depth` are waiting.")
    longestWaitSeconds: float = Field(description="How long the oldest waiting conversation has waited.")


class BoardAgent(_BoardModel):
    id: Id
    name: str | None = None
    presence: Presence | None = None
    chosenPresence: Presence | None = None
    used: int = Field(description="Capacity units in use.")
    capacity: int | None = None
    queues: list[str] = Field(default_factory=list)


class Board(_BoardModel):
    """Live conversations queue by queue (priority order, each oldest first), every queue's depth
    and longest wait, and agents by id; `items` and `agents` page together."""

    items: list[BoardConversation]
    queues: list[QueueSummary]
    agents: list[BoardAgent]
    continuationToken: str | None = Field(None, description="Absent on the last page.")


class Me(BaseModel):
    """The signed-in staff member as the API knows them (`GET /api/agents/me`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

    id: str = Field(description="The id administrators register you under: `oid` (Entra) or `sub` (dev).")
    name: str | None = None
    roles: list[str]
    registered: bool = Field(description="Whether an agent is registered under `id`.")
