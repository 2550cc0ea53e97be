"""The follow-ups capability's public module: policies, the planner, the event handler, the
dispatcher, links, the inbox, the dev outbox and a patient's recent follow-ups (the unified view)."""

from shared.followups.actions import PAGE_CSP, done_page, link_page, use_link
from shared.followups.dispatcher import dispatch
from shared.followups.handler import HANDLED, handle_event
from shared.followups.inbox import dev_outbox, inbox_of, mark_read
from shared.followups.model import ReminderPolicy, SurveyPolicy, parse_duration
from shared.followups.policies import Policies
from shared.followups.recent import PatientNotification, PatientSurveyAnswer, recent_followups
from shared.followups.reports import handle_report
from shared.followups.service import Followups, send_body
from shared.followups.survey_report import survey_report
from shared.followups.surveys import answer_survey, survey_of

__all__ = [
    "HANDLED",
    "PAGE_CSP",
    "Followups",
    "PatientNotification",
    "PatientSurveyAnswer",
    "Policies",
    "ReminderPolicy",
    "SurveyPolicy",
    "answer_survey",
    "dev_outbox",
    "dispatch",
    "done_page",
    "handle_event",
    "handle_report",
    "inbox_of",
    "link_page",
    "mark_read",
    "parse_duration",
    "recent_followups",
    "send_body",
    "survey_of",
    "survey_report",
    "use_link",
]
