"""Text from outside: what may appear in a name, a message or any other string we are sent.

Refused everywhere (the HTTP edge checks every string of every JSON body, JSON inside strings and
query values): C0 controls except tab, newline and carriage return; DEL; C1 controls; lone
surrogates (they cannot be stored as UTF-8); the bidirectional embeddings, overrides and isolates
U+202A-U+202E and U+2066-U+2069 (the "Trojan Source" characters: they reorder the text around them,
so what a screen shows is not what was stored). The marks U+200E, U+200F and U+061C stay allowed:
right-to-left names need them, and they only set the direction of neighbouring punctuation.

`Text` is free text (messages, notes, reasons): newline, carriage return and tab allowed. `Line`
is a single line (names, titles, codes): none of those, nor U+2028/U+2029.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_FORBIDDEN_IN_LINE = re.compile("[\t\n\r\u2028\u2029]")
# The same rules as JSON-schema patterns, so the OpenAPI document says them (ECMA-262 syntax; lone
# surrogates cannot be written in one, and JSON text cannot carry them to us anyway).
_TEXT_CLASS = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069"
TEXT_PATTERN = f"^[^{_TEXT_CLASS}]*$"
LINE_PATTERN = f"^[^{_TEXT_CLASS}\\t\\n\\r\\u2028\\u2029]*$"
TEXT_RULE = "must not contain control characters or bidirectional overrides"
LINE_RULE = "must be a single line (no control characters, line breaks or tabs)"


def text_problem(value: str) -> str | None:
    """Why `value` is not acceptable text, or None."""
    return TEXT_RULE if _FORBIDDEN.search(value) else None


def check_text(value: str) -> str:
    if _FORBIDDEN.search(value):
        raise ValueError(TEXT_RULE)
    return value


def check_line(value: str) -> str:
    if _FORBIDDEN.search(value) or _FORBIDDEN_IN_LINE.search(value):
        raise ValueError(LINE_RULE)
    return value


Text = Annotated[str, AfterValidator(check_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
Line = Annotated[str, AfterValidator(check_line), Field(json_schema_extra={"pattern": LINE_PATTERN})]
