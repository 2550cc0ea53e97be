"""Checks of real answers against the OpenAPI document that schemathesis does not make: headers a
response carries must be declared, and every date or date-time a response carries must sit in a
field whose schema says so (`format`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# Headers clients act on: if an answer carries one, the document must say so for that status.
WATCHED_HEADERS = ("ETag", "Location", "Retry-After", "Idempotent-Replayed", "WWW-Authenticate")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$")


def resolve(document: dict[str, Any], schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def response_spec(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any] | None:
    responses = document["paths"][path][method.lower()]["responses"]
    found = responses.get(str(status)) or responses.get(f"{status // 100}XX") or responses.get("default")
    return resolve(document, found) if found is not None else None


def undeclared_headers(
    document: dict[str, Any], path: str, method: str, status: int, headers: dict[str, str]
) -> list[str]:
    spec = response_spec(document, path, method, status) or {}
    declared = {name.lower() for name in spec.get("headers", {})}
    present = {name.lower() for name in headers}
    return [h for h in WATCHED_HEADERS if h.lower() in present and h.lower() not in declared]


def _branches(document: dict[str, Any], schema: Any) -> Iterator[dict[str, Any]]:
    schema = resolve(document, schema)
    if not isinstance(schema, dict):
        return
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        for branch in alternatives:
            yield from _branches(document, branch)
    else:
        yield schema


def undeclared_dates(document: dict[str, Any], schema: Any, value: Any, where: str = "$") -> list[str]:
    """Paths of date or date-time strings in `value` whose declared schema has no `format`.
    Values in places the schema does not describe are not judged (they have no schema to fix)."""
    branches = list(_branches(document, schema))
    if not branches:
        return []
    if isinstance(value, str):
        if not (_DATE.match(value) or _DATE_TIME.match(value)):
            return []
        if any(b.get("pattern") or b.get("enum") for b in branches):
            return []  # an id or a fixed value that happens to look like a date (a queue "2026-01-05")
        formats = {b.get("format") for b in branches if b.get("type") in ("string", None)}
        return [] if formats & {"date", "date-time"} else [where]
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            for branch in branches:
                if key in branch.get("properties", {}):
                    child = branch["properties"][key]
                elif isinstance(branch.get("additionalProperties"), dict):
                    child = branch["additionalProperties"]
                else:
                    continue
                found += undeclared_dates(document, child, item, f"{where}.{key}")
                break
    elif isinstance(value, list):
        for branch in branches:
            if isinstance(branch.get("items"), dict):
                for index, item in enumerate(value):
                    found += undeclared_dates(document, branch["items"], item, f"{where}[{index}]")
                break
    return found


def body_schema(spec: dict[str, Any], content_type: str) -> Any:
    media = content_type.split(";", 1)[0].strip()
    content = spec.get("content", {})
    return content.get(media, {}).get("schema")
