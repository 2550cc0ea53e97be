"""Errors that cross layers. Each maps to one RFC 9457 problem type at the HTTP edge.

Ports raise the storage-flavoured ones (NotFound, Conflict, PreconditionFailed, Unavailable);
services may raise any. Messages (`detail`) must never contain PHI: they reach clients and logs.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PscError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, *, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions or {}


class BadRequest(PscError):
    status, slug, title = 400, "bad-request", "Bad request"


class ValidationFailed(BadRequest):
    """`errors` lists the failing fields: [{"field": "a.b", "message": "..."}]."""

    slug, title = "validation", "Request validation failed"

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None) -> None:
        super().__init__(detail or "One or more fields are invalid.", extensions={"errors": errors})
        self.errors = errors


class Unauthorized(PscError):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(PscError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotLinked(Forbidden):
    """A patient's sign-in is not linked to a patient record yet."""

    slug, title = "not-linked", "Sign-in not linked to a patient"

    def __init__(self) -> None:
        super().__init__(
            "This sign-in is not linked to a patient record yet. Ask the service center for a "
            'link code, then send it with POST /api/me/link {"code": "<code>"}.'
        )


class NotFound(PscError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(PscError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(PscError):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(PscError):
    """The resource existed and no longer does (an expired link)."""

    status, slug, title = 410, "gone", "Gone"


class UnprocessableContent(PscError):
    """The body is well formed but names a record that does not exist (a patient, a queue, an
    agent ...): 422, with the failing fields in `errors` as for a 400. A missing record named in
    the *path* is a 404 instead."""

    status, slug, title = 422, "unprocessable-content", "Unprocessable content"

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None) -> None:
        super().__init__(
            detail or "The request refers to something that does not exist.", extensions={"errors": errors}
        )
        self.errors = errors


class PreconditionFailed(PscError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(PscError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(PscError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class InvalidLinkCode(BadRequest):
    """A link code that is wrong, used or expired (one answer for all: no oracle)."""

    slug, title = "invalid-link-code", "Invalid link code"

    def __init__(self) -> None:
        super().__init__("The code is wrong, already used or expired. Ask the service center for a new one.")


class TooManyRequests(PscError):
    """Answered with a `Retry-After` header (seconds)."""

    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class Unavailable(PscError):
    """A dependency (store, bus) cannot be reached; the caller may retry."""

    status, slug, title = 503, "unavailable", "Service unavailable"


class AccessDenied(Unavailable):
    """A dependency refused our identity a right it needs (a role assignment is missing). API
    callers see 503 like any dependency they cannot fix; ops tooling names the role to grant.
    `right` is the dependency's own word for it (Service Bus: Manage, Send, Listen)."""

    def __init__(self, detail: str, *, right: str, resource: str | None = None) -> None:
        super().__init__(detail)
        self.right = right
        self.resource = resource


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the setting."""
