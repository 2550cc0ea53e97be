"""The follow-ups capability's public module: policies, the planner, the event handler, the
dispatcher, links, the inbox and the dev outbox."""

from shared.followups.dispatcher import dispatch
from shared.followups.handler import HANDLED, handle_event
from shared.followups.model import ReminderPolicy, SurveyPolicy, parse_duration
from shared.followups.policies import Policies
from shared.followups.reports import handle_report
from shared.followups.service import Followups, send_body
from shared.followups.surveys import answer_survey, survey_of

__all__ = [
    "HANDLED",
    "Followups",
    "Policies",
    "ReminderPolicy",
    "SurveyPolicy",
    "answer_survey",
    "dispatch",
    "handle_event",
    "handle_report",
    "parse_duration",
    "send_body",
    "survey_of",
]
