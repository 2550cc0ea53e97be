"""The workspace capability's public module: agent scripts, the unified patient view, the merge."""

from shared.workspace.merge import MergeRequest, MergeResult, merge
from shared.workspace.model import ConversationScript, Script, ScriptRequest
from shared.workspace.scripts import PLACEHOLDERS, Scripts, choose, fill, find_cycle, script_view
from shared.workspace.summary import PatientSummary, patient_summary

__all__ = [
    "PLACEHOLDERS",
    "ConversationScript",
    "MergeRequest",
    "MergeResult",
    "PatientSummary",
    "Script",
    "ScriptRequest",
    "Scripts",
    "choose",
    "fill",
    "find_cycle",
    "merge",
    "patient_summary",
    "script_view",
]
