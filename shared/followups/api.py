"""The follow-ups capability's public module: policies, the planner, the event handler, the
dispatcher, links, the inbox and the dev outbox."""

from shared.followups.model import ReminderPolicy, SurveyPolicy, parse_duration
from shared.followups.policies import Policies

__all__ = ["Policies", "ReminderPolicy", "SurveyPolicy", "parse_duration"]
