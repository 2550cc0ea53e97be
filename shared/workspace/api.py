"""The workspace capability's public module: agent scripts (the unified patient view joins it)."""

from shared.workspace.merge import MergeRequest, MergeResult, merge
from shared.workspace.model import ConversationScript, Script, ScriptRequest
from shared.workspace.scripts import PLACEHOLDERS, Scripts, choose, fill, find_cycle, script_view

__all__ = [
    "PLACEHOLDERS",
    "ConversationScript",
    "MergeRequest",
    "MergeResult",
    "Script",
    "ScriptRequest",
    "Scripts",
    "choose",
    "fill",
    "find_cycle",
    "merge",
    "script_view",
]
