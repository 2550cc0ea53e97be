"""The OpenAPI document says what the API does: checked over the whole generated document, and
against the handlers' source for the headers they read and send. (What real answers carry is
checked by tests/api/test_schemathesis.py.)"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import function_app  # noqa: F401 - registers every route in ROUTES (a test run alone needs them too)
from shared.runtime import Runtime
from shared.web.api import ROUTES, Call, UndeclaredHeader
from tests.conftest import invoke, token

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "put", "post", "delete", "patch")
# String fields named like time stamps must say their format (or, for wall-clock `HH:MM`, a pattern).
TIME_NAME = re.compile(
    r"(At|Since)$|^(start|end|from|to|date|dateOfBirth|timestamp|created|updated|lastUpdated)$"
)
# Fields whose values are one of a fixed set.
ENUM_NAMES = {
    "status",
    "presence",
    "chosenPresence",
    "urgency",
    "assignmentMethod",
    "skillMatch",
    "action",
    "preferredChannel",
    "from",
    "event",
    "resourceType",
    "mode",
    "visibility",
}
# The board's `status` filter is a comma-separated list of statuses, described in words; a
# merge's `from` is the provisional patient's id (the issue names the field).
ENUM_EXEMPT = {("GET /api/supervisor/conversations", "status"), ("MergeRequest", "from")}


@pytest.fixture
async def document(runtime: Runtime) -> dict[str, Any]:
    answer = await invoke("openapi")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    return answer.json  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def resolve(document: dict[str, Any], schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def branches(document: dict[str, Any], schema: Any) -> Iterator[dict[str, Any]]:
    schema = resolve(document, schema)
    if isinstance(schema, dict):
        alternatives = schema.get("anyOf") or schema.get("oneOf")
        if alternatives:
            for branch in alternatives:
                yield from branches(document, branch)
        elif schema.get("type") != "null":
            yield schema


def fields(document: dict[str, Any]) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """Every named value the document describes: (where, name, its schema's alternatives)."""
    for name, schema in document["components"]["schemas"].items():
        yield from _properties(document, name, schema)
    for label, operation in operations(document):
        for parameter in operation.get("parameters", []):
            yield label, parameter["name"], list(branches(document, parameter["schema"]))


def _properties(
    document: dict[str, Any], where: str, schema: Any
) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    if isinstance(schema, dict):
        for name, prop in schema.get("properties", {}).items():
            yield where, name, list(branches(document, prop))
        for value in schema.values():
            if isinstance(value, (dict, list)) and value is not schema.get("properties"):
                yield from _properties(document, where, value)
        for prop in schema.get("properties", {}).values():
            yield from _properties(document, where, prop)
    elif isinstance(schema, list):
        for item in schema:
            yield from _properties(document, where, item)


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert document["openapi"] == "3.1.0"
    errors = [str(error).splitlines()[0] for error in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []


async def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    missing = [
        label
        for label, operation in operations(document)
        if not operation.get("summary") or len(operation.get("description", "")) < 20
    ]
    assert missing == []
    assert len(list(operations(document))) == len(ROUTES)


async def test_every_body_in_or_out_has_a_schema(document: dict[str, Any]) -> None:
    missing = []
    for label, operation in operations(document):
        bodies = [("request", operation["requestBody"])] if "requestBody" in operation else []
        bodies += list(operation["responses"].items())
        for status, spec in bodies:
            content = resolve(document, spec).get("content")
            # Every answer of this API has a body (no 204s): a JSON document or a problem.
            if not content or not all(resolve(document, m.get("schema")) for m in content.values()):
                missing.append(f"{label} {status}")
    assert missing == []


async def test_error_answers_declare_their_headers(document: dict[str, Any]) -> None:
    for label, operation in operations(document):
        for status, spec in operation["responses"].items():
            headers = {name.lower() for name in spec.get("headers", {})}
            assert "x-correlation-id" in headers, (label, status)
            if status == "429":
                assert "retry-after" in headers, label
            if status == "401":
                assert "www-authenticate" in headers, label


@functools.cache
def _handlers() -> tuple[tuple[str, ast.AsyncFunctionDef, str], ...]:
    """Each route handler in functions/ with its module's source (parsed once per run: the tests
    below ask for them per module and per route)."""
    found = []
    for path in sorted((ROOT / "functions").glob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.AsyncFunctionDef) and any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "route"
                for d in node.decorator_list
            ):
                found.append((path.stem, node, source))
    return tuple(found)


def _spec(name: str) -> Any:
    return next(spec for spec in ROUTES if spec.name == name)


def test_every_header_a_handler_reads_is_declared_on_its_route() -> None:
    read = 0
    for _, handler, _ in _handlers():
        for node in ast.walk(handler):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "header"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                declared = {h.key for h in _spec(handler.name).request_headers()}
                assert str(node.args[0].value).lower() in declared, (handler.name, node.args[0].value)
                read += 1
            elif isinstance(node, ast.Attribute) and node.attr == "if_match":  # `call.if_match`
                assert "if-match" in {h.key for h in _spec(handler.name).request_headers()}, handler.name
                read += 1
    assert read >= 3


def test_every_response_header_a_module_sends_is_declared_by_its_routes() -> None:
    """A literal header name in a reply (`headers={"ETag": ...}`, `headers["Location"] = ...`)
    must be declared by a route of that module; which route sends it is checked on real answers."""
    found = 0
    for path in sorted((ROOT / "functions").glob("*.py")):
        tree = ast.parse(path.read_text())
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "headers" and isinstance(node.value, ast.Dict):
                names |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id == "headers"
                and isinstance(node.slice, ast.Constant)
            ):
                names.add(node.slice.value)
        handlers = _handler_names(path.stem)
        declared = {h.key for spec in ROUTES if spec.name in handlers for h in spec.response_headers}
        for name in names:
            assert str(name).lower() in declared, (path.stem, name)
            found += 1
    assert found >= 3


@functools.cache
def _handler_names(module: str) -> frozenset[str]:
    return frozenset(handler.name for stem, handler, _ in _all_handlers() if stem == module)


@functools.cache
def _all_handlers() -> tuple[tuple[str, ast.AsyncFunctionDef, str], ...]:
    # Parsed once: the check above asks for every module's handlers.
    return tuple(_handlers())


async def test_reading_an_undeclared_header_fails_loudly(runtime: Runtime) -> None:
    import azure.functions as func

    request = func.HttpRequest("GET", "http://localhost/api/x", headers={"If-Match": '"1"'}, body=b"")
    call = Call(request=request, runtime=runtime, correlation_id="c-1234567890", principal=None)
    with pytest.raises(UndeclaredHeader):
        call.header("If-Match")
    declared = Call(
        request=request,
        runtime=runtime,
        correlation_id="c-1234567890",
        principal=None,
        declared_headers=frozenset({"if-match"}),
    )
    assert declared.header("If-Match") == '"1"'


async def test_the_escalation_webhook_documents_both_ways_to_authenticate(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/escalations"]["post"]
    assert operation["security"] == [{"bearer": []}, {"webhookSignature": []}]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["webhookSignature"] == {
        **schemes["webhookSignature"],
        "in": "header",
        "name": "webhook-signature",
    }


async def test_writes_that_take_if_match_and_answers_that_carry_an_etag_say_so(
    document: dict[str, Any],
) -> None:
    profile = document["paths"]["/api/me/profile"]
    assert "If-Match" in {p["name"] for p in profile["put"]["parameters"]}
    for method in ("get", "put"):
        assert profile[method]["responses"]["200"]["headers"]["ETag"]["required"] is True
    booking = document["paths"]["/api/appointments"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in booking["parameters"]}
    assert {"Location", "Idempotent-Replayed"} <= set(booking["responses"]["201"]["headers"])


async def test_time_stamps_and_dates_state_their_format(document: dict[str, Any]) -> None:
    assert sum(1 for _, name, _ in fields(document) if TIME_NAME.search(name)) >= 40
    unformatted = [
        f"{where}.{name}"
        for where, name, alternatives in fields(document)
        if TIME_NAME.search(name)
        for schema in alternatives
        if schema.get("type") == "string"
        and schema.get("format") not in ("date", "date-time", "duration")
        and "pattern" not in schema  # wall-clock HH:MM
        and "enum" not in schema
        and "const" not in schema  # `from`: who sent a message
    ]
    assert unformatted == []


# An ISO 8601 duration (`P2D`, `PT2H`, `P1DT12H`, `P1W`).
ISO_DURATION = re.compile(r"P(?=\d|T\d)(\d+[YMWD])*(T(?=\d)(\d+[HMS])+)?")


def _strings(document: dict[str, Any], alternatives: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The string schemas among a field's alternatives, an array's items included."""
    for schema in alternatives:
        if schema.get("type") == "array":
            yield from _strings(document, list(branches(document, schema.get("items"))))
        elif schema.get("type") == "string":
            yield schema


def _duration_like(schema: dict[str, Any]) -> bool:
    samples = [*schema.get("examples", []), schema.get("example"), schema.get("default")]
    return any(isinstance(s, str) and ISO_DURATION.fullmatch(s) for s in samples) or bool(
        re.search(r"ISO[ -]8601 duration", schema.get("description", ""))
    )


async def test_iso_8601_durations_state_their_format(document: dict[str, Any]) -> None:
    """A string field whose examples or default are ISO 8601 durations, or whose description says
    it is one, must say `format: duration` (reminder offsets, a survey's delay)."""
    durations = [
        (f"{where}.{name}", schema.get("format"))
        for where, name, alternatives in fields(document)
        for schema in _strings(document, alternatives)
        if _duration_like(schema)
    ]
    assert len(durations) >= 2
    assert [label for label, format_ in durations if format_ != "duration"] == []


async def test_fields_with_a_fixed_set_of_values_list_them(document: dict[str, Any]) -> None:
    assert sum(1 for _, name, _ in fields(document) if name in ENUM_NAMES) >= 30
    open_ended = [
        f"{where}.{name}"
        for where, name, alternatives in fields(document)
        if name in ENUM_NAMES and (where, name) not in ENUM_EXEMPT
        for schema in alternatives
        if schema.get("type") == "string"
        and not {"enum", "const", "format"} & set(schema)  # `from`: a search's start
    ]
    assert open_ended == []


async def test_dev_token_roles_reach_the_document_unchanged(document: dict[str, Any]) -> None:
    """`x-roles` lists exactly what the route allows, so clients know which token to send."""
    for spec in ROUTES:
        path = "/api/" + re.sub(r"\{\*?([A-Za-z_]\w*)[^}]*\}", r"{\1}", spec.route)
        operation = document["paths"][path][spec.method.lower()]
        assert operation.get("x-roles", []) == sorted(spec.access.roles)
    assert token("Agent")  # the conftest's tokens are what the document's `bearer` describes
