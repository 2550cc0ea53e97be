"""RFC 9457 problem details: the only error shape clients ever see."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.kernel.errors import PscError, TooManyRequests, ValidationFailed

if TYPE_CHECKING:
    from pydantic import ValidationError

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:psc:problem:"


def problem_response(
    error: PscError, *, correlation_id: str, instance: str | None = None
) -> func.HttpResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "correlationId": correlation_id,
    }
    if instance:
        body["instance"] = instance
    body.update(error.extensions)
    headers = {"x-correlation-id": correlation_id}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="psc-api"'
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    return func.HttpResponse(
        json.dumps(body), status_code=error.status, mimetype=PROBLEM_JSON, headers=headers
    )


def validation_failed(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    """Field paths and messages only: pydantic's `input` would echo the value back (PHI)."""
    errors = []
    for err in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        errors.append({"field": path, "message": err["msg"]})
    return ValidationFailed(errors)
