"""The one error the dev host raises when it cannot start: its message tells the user what to fix."""

from __future__ import annotations


class StartError(Exception):
    """The function app, a trigger or a setting cannot be served; the message names the culprit."""
