"""OpenAPI 3.1 document generated from the registered routes (`shared.web.api.ROUTES`) and their
pydantic models: nothing here is written by hand per endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from shared.web.api import EXTERNAL_ID_PARAM, ID_PARAM, RouteSpec, resolve_model
from shared.web.headers import (
    CORRELATION_ID,
    CORRELATION_ID_OUT,
    RETRY_AFTER,
    WWW_AUTHENTICATE,
    Header,
)
from shared.web.problems import PROBLEM_JSON


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """Error body (RFC 9457). `type` is stable per kind of error; `correlationId` matches the logs."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:psc:problem:validation"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    correlationId: str | None = None
    errors: list[FieldError] | None = None


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document (the fields every document has; the rest as the specification says)."""

    model_config = ConfigDict(extra="allow")

    openapi: str = Field(examples=["3.1.0"])
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


_PARAM = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}")

_ERROR_TEXT = {
    400: "Invalid input (problem lists the failing fields)",
    401: "Missing or invalid authentication",
    403: "Authenticated, but the role does not allow this",
    404: "Not found (also: another patient's record)",
    409: "Conflict with the current state",
    412: "If-Match does not match the current ETag",
    413: "Body over 256 KiB",
    415: "Body is not JSON",
    422: "The body names a record that does not exist (problem lists the fields)",
    429: "Too many attempts; retry after the Retry-After header's seconds",
    503: "A dependency is unavailable; retry later",
}


def _path(route: str) -> tuple[str, list[str]]:
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "{" + match.group(1) + "}"

    return "/api/" + _PARAM.sub(replace, route.strip("/")), names


def _param_schema(checker: str) -> dict[str, Any]:
    """The JSON schema of a path parameter's checker (shared/web/api.py `params`)."""
    from shared.kernel.ids import ID_PATTERN, MAX_EXTERNAL_ID, MAX_ID
    from shared.scheduling.api import PROVIDER_ID_PATTERN

    known: dict[str, dict[str, Any]] = {
        ID_PARAM: {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": MAX_ID},
        EXTERNAL_ID_PARAM: {"type": "string", "minLength": 1, "maxLength": MAX_EXTERNAL_ID},
        "shared.scheduling.model:check_provider_id": {"type": "string", "pattern": PROVIDER_ID_PATTERN},
    }
    return known.get(checker, {"type": "string"})


def _query_parameters(model: type[BaseModel], schema: dict[str, Any]) -> list[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
        }
        for name, prop in properties.items()
    ]


def _key_rules(node: Any) -> Any:
    """pydantic writes a dict whose key type has a pattern as `patternProperties`, which leaves
    other keys unconstrained; the edge refuses them, so say it as `propertyNames`."""
    if isinstance(node, list):
        return [_key_rules(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _key_rules(value) for key, value in node.items()}
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
        ((pattern, values),) = patterns.items()
        del node["patternProperties"]
        node["additionalProperties"] = values
        node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
    return node


def _header_parameter(header: Header) -> dict[str, Any]:
    return {
        "name": header.name,
        "in": "header",
        "required": header.required,
        "description": header.description,
        "schema": header.schema,
    }


def _response_headers(headers: Iterable[Header]) -> dict[str, Any]:
    return {
        h.name: {"description": h.description, "required": h.required, "schema": h.schema}
        for h in (*headers, CORRELATION_ID_OUT)
    }


def _error_headers(status: int) -> dict[str, Any]:
    return _response_headers({401: (WWW_AUTHENTICATE,), 429: (RETRY_AFTER,)}.get(status, ()))


def build_openapi(routes: Iterable[RouteSpec], *, title: str, version: str) -> dict[str, Any]:
    routes = list(routes)
    models: set[type[BaseModel]] = {Problem}
    for spec in routes:
        for named in (spec.body, spec.response):
            if named is not None:
                models.add(resolve_model(named))
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = _key_rules(defs.get("$defs", {}))

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict[str, dict[str, Any]] = {}
    for spec in sorted(routes, key=lambda s: (s.route, s.method)):
        path, params = _path(spec.route)
        checkers = {name: _param_schema(checker) for name, checker in spec.params}
        operation: dict[str, Any] = {
            "operationId": spec.name,
            "summary": spec.summary,
            "description": spec.description,
            "tags": [spec.tag],
            "parameters": [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": checkers.get(name, {"type": "string"}),
                }
                for name in params
            ],
        }
        if spec.query is not None:
            query = resolve_model(spec.query)
            operation["parameters"] += _query_parameters(query, _key_rules(query.model_json_schema()))
        operation["parameters"] += [_header_parameter(h) for h in (*spec.request_headers(), CORRELATION_ID)]
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(resolve_model(spec.body))}},
            }
        success: dict[str, Any] = {
            "description": "Success",
            "headers": _response_headers(spec.response_headers),
        }
        if spec.response is not None:
            success["content"] = {spec.media_type: {"schema": ref(resolve_model(spec.response))}}
        responses: dict[str, Any] = {str(spec.status): success}
        for status, meaning in spec.also:
            responses[str(status)] = {**success, "description": meaning}
        codes = set(spec.errors)
        if spec.body is not None or spec.query is not None or spec.params:
            codes |= {400}
        if spec.body is not None:
            codes |= {413, 415}
        if not spec.access.public:
            codes |= {401, 403}
            # Alternatives (OpenAPI ORs the entries): a bearer token with one of x-roles, or a
            # Standard Webhooks signature.
            operation["security"] = [{"bearer": []}]
            if spec.access.signed_webhook:
                operation["security"].append({"webhookSignature": []})
            operation["x-roles"] = sorted(spec.access.roles)
        else:
            operation["security"] = []
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _ERROR_TEXT.get(code, "Error"),
                "headers": _error_headers(code),
                "content": {PROBLEM_JSON: {"schema": ref(Problem)}},
            }
        operation["responses"] = responses
        paths.setdefault(path, {})[spec.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Patient Service Center API. Errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Entra ID access token (production) or dev token (PSC_AUTH_MODE=dev).",
                },
                "webhookSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "Standard Webhooks signature (https://www.standardwebhooks.com/): "
                    "headers `webhook-id`, `webhook-timestamp` (unix seconds, within 5 minutes of "
                    "our clock) and `webhook-signature` = `v1,<base64 HMAC-SHA256(key, "
                    '"{id}.{timestamp}.{raw body}")>` with the key of PSC_WEBHOOK_SECRET '
                    "(`whsec_<base64>`). Sent without an `Authorization` header. A `webhook-id` "
                    "seen before is answered as a duplicate.",
                },
            },
        },
    }
