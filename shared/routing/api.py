"""The routing capability's public module: classification (`place`), the administrators'
directory, assignment and presence, transfers, the consoles' reads (board, my work), the
`routing` queue's handler and the sweep. Other packages import from here only."""

from shared.routing.assignment import Assignment
from shared.routing.board import SupervisorBoard, my_conversations, queue_order
from shared.routing.directory import (
    RoutingDirectory,
    agent_view,
    new_agent_doc,
    place,
    presence_etag,
    profile_etag,
)
from shared.routing.engine import Placement
from shared.routing.handler import handle_routing_message
from shared.routing.live import QueueCounts, QueueState, SeatState, queue_counts, queue_state, queue_states
from shared.routing.model import (
    FALLBACK_LANGUAGE,
    URGENCY_PRIORITY,
    AgentList,
    AgentListQuery,
    AgentProfile,
    AgentView,
    Board,
    BoardQuery,
    Me,
    Presence,
    PresenceChange,
    QueueList,
    QueueSettings,
    RoutingAttributes,
    RoutingRules,
)
from shared.routing.seats import route_request, seat_document, waiting_entry
from shared.routing.settings import queue_settings_of
from shared.routing.standing import Standing, agent_display_name, queue_standing
from shared.routing.sweep import sweep
from shared.routing.transfers import Transfers

__all__ = [
    "FALLBACK_LANGUAGE",
    "URGENCY_PRIORITY",
    "AgentList",
    "AgentListQuery",
    "AgentProfile",
    "AgentView",
    "Assignment",
    "Board",
    "BoardQuery",
    "Me",
    "Placement",
    "Presence",
    "PresenceChange",
    "QueueCounts",
    "QueueList",
    "QueueSettings",
    "QueueState",
    "RoutingAttributes",
    "RoutingDirectory",
    "RoutingRules",
    "SeatState",
    "Standing",
    "SupervisorBoard",
    "Transfers",
    "agent_display_name",
    "agent_view",
    "handle_routing_message",
    "my_conversations",
    "new_agent_doc",
    "place",
    "presence_etag",
    "profile_etag",
    "queue_counts",
    "queue_order",
    "queue_settings_of",
    "queue_standing",
    "queue_state",
    "queue_states",
    "route_request",
    "seat_document",
    "sweep",
    "waiting_entry",
]
