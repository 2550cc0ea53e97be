"""The live capability's public module: the `realtime` consumer of the `events` topic
(`LiveFeed`), the frames it pushes (`SUBJECTS`, the group names) and the negotiate services."""

from shared.live.feed import WATERMARK_ID, LiveFeed, Watermark
from shared.live.frames import SUBJECTS, SUPERVISORS, agent_group, patient_group, staff_group
from shared.live.negotiate import agent_groups, client_url, hub_user, patient_groups, supervisor_groups

__all__ = [
    "SUBJECTS",
    "SUPERVISORS",
    "WATERMARK_ID",
    "LiveFeed",
    "Watermark",
    "agent_group",
    "agent_groups",
    "client_url",
    "hub_user",
    "patient_group",
    "patient_groups",
    "staff_group",
    "supervisor_groups",
]
