"""The one reader for JSON that comes from outside: request bodies, JSON carried inside strings
(a Bot Framework `channelData.tags`) and our continuation tokens once decoded.

What it refuses, each as a `JsonRejected` (a ValueError, so pydantic validators and the HTTP edge
turn it into a 400 that names the path, never the value):

* more than `max_bytes` of input, or input that is not UTF-8;
* nesting deeper than `max_depth` (an object or array counts one level; 1,000 levels of `[` would
  otherwise cost a RecursionError deep inside a validator);
* an object with the same key twice (JSON parsers disagree on which one wins; we take neither);
* `NaN`, `Infinity` (not JSON) and numbers Python refuses to convert;
* in any key or string value, the characters `shared.kernel.text` refuses everywhere (unless
  `check_text=False`: a document another service sends us, such as an Event Grid event carrying
  an inbound SMS, is bounded but not held to our text rules; what we keep of it is checked then).

Why by hand: the standard library parses, and does it in C; nothing it offers caps depth or
refuses duplicate keys, and pydantic's parser keeps the last duplicate. The walk afterwards is
iterative, so no input can exhaust the stack.
"""

from __future__ import annotations

import json
from typing import Any

from shared.kernel.text import TEXT_RULE, text_problem

MAX_DEPTH = 32
MAX_BYTES = 256 * 1024


class JsonRejected(ValueError):
    """Why a JSON text was refused; `path` is dotted from the root (`""` for the whole text)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class _Duplicated(dict[str, Any]):
    """An object that had a repeated key (the walk reports it with its path)."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.duplicate = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _Duplicated(pairs, key)
        seen.add(key)
    return dict(pairs)


def _not_json(constant: str) -> Any:
    raise JsonRejected("is not valid JSON (NaN and Infinity are not JSON numbers)")


def _key_label(key: str) -> str:
    # Keys name fields; one that is not a plain name is not repeated back.
    return key if key.isidentifier() and len(key) <= 64 else "(key)"


def read_json(
    data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, check_text: bool = True
) -> Any:
    """Parse `data`; raise `JsonRejected` for anything listed in the module docstring."""
    if isinstance(data, bytes):
        if len(data) > max_bytes:
            raise JsonRejected(f"is larger than {max_bytes} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRejected("is not UTF-8") from None
    else:
        text = data
        if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
            raise JsonRejected(f"is larger than {max_bytes} bytes")
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_not_json)
    except RecursionError:
        raise JsonRejected(f"is nested deeper than {max_depth} levels") from None
    except JsonRejected:
        raise
    except ValueError:
        raise JsonRejected("is not valid JSON") from None
    _walk(value, max_depth, check_text)
    return value


def _walk(root: Any, max_depth: int, check_text: bool) -> None:
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if check_text and text_problem(value):
                raise JsonRejected(TEXT_RULE, path)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth + 1 > max_depth:
            raise JsonRejected(f"is nested deeper than {max_depth} levels", path)
        if isinstance(value, _Duplicated):
            raise JsonRejected("has the same key twice", _join(path, _key_label(value.duplicate)))
        if isinstance(value, list):
            stack.extend((item, _join(path, str(i)), depth + 1) for i, item in enumerate(value))
            continue
        for key, item in value.items():
            if check_text and text_problem(key):
                raise JsonRejected("has a key with " + TEXT_RULE.removeprefix("must not contain "), path)
            stack.append((item, _join(path, _key_label(key)), depth + 1))


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part
