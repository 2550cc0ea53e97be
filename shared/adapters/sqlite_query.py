"""Query rendering for the embedded document store: structured queries (`shared.kernel.documents
.Query`) as SQLite JSON expressions with Cosmos DB's semantics (type-aware comparisons, null
ordering, `defined`/`undefined`, `contains`), the keyset `after` clause that pages them, and the
continuation tokens (bound to the container, partition and query)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.kernel.documents import Condition, Query
from shared.kernel.errors import BadRequest
from shared.kernel.json_reader import read_json

_TOKEN_VERSION = 1
# A string field the embedded store indexes; ordering or ranging a partition by it is logarithmic.
# (Cosmos DB's default policy indexes every path, so the field is ordinary JSON there.)
SORT_KEY = "sortKey"

_JSON_TYPES = {
    "null": ("null",),
    "bool": ("true", "false"),
    "number": ("integer", "real"),
    "string": ("text",),
}
_COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">="})
# Cosmos: null compared with null is defined; only the operators that include equality are true.
_NULL_TRUE_COMPARISONS = frozenset({"=", "<=", ">="})
_SORT_RANK = (
    "CASE json_type(body, ?) WHEN 'null' THEN 1 WHEN 'false' THEN 2 WHEN 'true' THEN 2 "
    "WHEN 'integer' THEN 3 WHEN 'real' THEN 3 WHEN 'text' THEN 4 WHEN 'array' THEN 5 "
    "WHEN 'object' THEN 6 ELSE 0 END"
)


# ---------------------------------------------------------------------------------------------------
# Query rendering


def _json_path(field: str) -> str:
    # Field paths were validated by the port (identifiers joined by dots), so `$.a.b` is exact.
    return "$." + field


def _scalar_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("query values must be finite numbers")
        return "number"
    if isinstance(value, str):
        return "string"
    raise ValueError(f"query values must be str, int, float, bool or None, not {type(value).__name__}")


def _sql_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _type_list(kind: str) -> str:
    return ", ".join(f"'{name}'" for name in _JSON_TYPES[kind])


def render_condition(condition: Condition, params: list[Any]) -> str:
    """SQLite predicate over the `body` column for one port condition; values go into `params`."""
    path = _json_path(condition.field)
    op = condition.op
    if condition.field == SORT_KEY and op in _COMPARISONS and isinstance(condition.value, str):
        params.append(condition.value)
        return f"sort_key {op} ?"
    if op == "defined" or op == "undefined":
        params.append(path)
        return f"json_type(body, ?) IS {'NOT ' if op == 'defined' else ''}NULL"
    if op in _COMPARISONS:
        kind = _scalar_kind(condition.value)
        if kind == "null":
            if op not in _NULL_TRUE_COMPARISONS:
                return "0"
            params.append(path)
            return "json_type(body, ?) = 'null'"
        params.extend((path, path, _sql_value(condition.value)))
        return f"(json_type(body, ?) IN ({_type_list(kind)}) AND json_extract(body, ?) {op} ?)"
    if op == "in":
        by_kind: dict[str, list[Any]] = {}
        for value in condition.value:
            by_kind.setdefault(_scalar_kind(value), []).append(_sql_value(value))
        alternatives = []
        for kind, values in by_kind.items():
            if kind == "null":
                params.append(path)
                alternatives.append("json_type(body, ?) = 'null'")
                continue
            params.extend((path, path, *values))
            placeholders = ", ".join("?" for _ in values)
            alternatives.append(
                f"(json_type(body, ?) IN ({_type_list(kind)}) AND json_extract(body, ?) IN ({placeholders}))"
            )
        return "(" + " OR ".join(alternatives) + ")" if alternatives else "0"
    if op == "contains":
        kind = _scalar_kind(condition.value)
        params.extend((path, path))
        if kind == "null":
            member = "e.type = 'null'"
        else:
            params.append(_sql_value(condition.value))
            member = f"e.type IN ({_type_list(kind)}) AND e.atom = ?"
        exists = f"EXISTS (SELECT 1 FROM json_each(body, ?) AS e WHERE {member})"  # noqa: S608
        return f"(json_type(body, ?) = 'array' AND {exists})"
    raise ValueError(f"unsupported operator {op!r}")


@dataclass(frozen=True)
class _SortKey:
    """One ORDER BY term: its SQL expression (with bound parameters) and direction."""

    sql: str
    params: tuple[Any, ...]
    descending: bool


def _sort_keys(query: Query) -> list[_SortKey]:
    keys: list[_SortKey] = []
    for field, descending in query.order_by:
        if field == SORT_KEY:
            # Only strings are indexed: sorting by type rank first would defeat the index.
            keys.append(_SortKey("sort_key", (), descending))
            continue
        path = _json_path(field)
        keys.append(_SortKey(_SORT_RANK, (path,), descending))
        keys.append(_SortKey("json_extract(body, ?)", (path,), descending))
    keys.append(_SortKey("pk", (), False))
    keys.append(_SortKey("id", (), False))
    return keys


def _after(keys: Sequence[_SortKey], last: Sequence[Any], params: list[Any]) -> str:
    """Keyset predicate: rows strictly after `last` in the order `keys` describe.

    `IS` is SQLite's NULL-safe equality; a NULL sort value only occurs for undefined and null fields,
    which the rank term already separates, so `> NULL` being unknown loses nothing."""
    alternatives = []
    for index, key in enumerate(keys):
        terms = []
        for earlier, value in zip(keys[:index], last[:index], strict=True):
            terms.append(f"{earlier.sql} IS ?")
            params.extend((*earlier.params, value))
        terms.append(f"{key.sql} {'<' if key.descending else '>'} ?")
        params.extend((*key.params, last[index]))
        alternatives.append("(" + " AND ".join(terms) + ")")
    return "(" + " OR ".join(alternatives) + ")"


def _fingerprint(container: str, partition_key: str | None, query: Query) -> str:
    shape = [
        container,
        partition_key,
        [[c.field, c.op, c.value] for c in query.conditions],
        [[path, descending] for path, descending in query.order_by],
    ]
    encoded = json.dumps(shape, separators=(",", ":"), default=repr).encode()
    return hashlib.sha256(encoded).hexdigest()[:24]


def _encode_token(fingerprint: str, last: Sequence[Any]) -> str:
    payload = json.dumps({"v": _TOKEN_VERSION, "q": fingerprint, "k": list(last)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str, key_count: int) -> list[Any]:
    invalid = BadRequest("The continuation token is not valid for this query.")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # A token comes back from outside: the bounded reader (our tokens are two levels deep).
        payload = read_json(raw, max_bytes=16 * 1024, max_depth=2)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != _TOKEN_VERSION
        or payload.get("q") != fingerprint
        or not isinstance(payload.get("k"), list)
        or len(payload["k"]) != key_count
        or not all(isinstance(v, str | int | float | type(None)) for v in payload["k"])
    ):
        raise invalid
    keys: list[Any] = payload["k"]
    return keys
