"""The HTTP edge: one decorator registers a function with the Functions blueprint *and* records
what it accepts and answers, so OpenAPI is generated from the registered routes.

A handler receives a `Call` (principal already authenticated and authorised, body and query
already parsed into pydantic models) and returns a model, a `Reply` or None. Every failure becomes
an RFC 9457 problem; anything unexpected becomes a 500 that only carries a correlation id.

Models may be named lazily as "module:Class": the worker imports every function module to index
it, so a capability's models (and pydantic itself, ~0.1 s) load with its first call, not at
cold start of every function in the app.

What the edge checks for every route, so no route can forget (each refusal is a 400 problem that
names the field and never echoes the value, and comes before the handler writes anything):

* every path parameter is an `Id` (shared/kernel/ids.py) unless the route names another checker
  in `params` (e.g. an `ExternalId`, or a narrower id);
* a JSON body is read by the one bounded reader (shared/kernel/json_reader.py: size, depth,
  duplicate keys, control and bidi characters in every string) and validated **strictly** (no
  bool→int, str→int, int→str or float→int);
* a route without a body accepts none, whitespace or exactly `{}`;
* query values are strings parsed into their types (lax), each given at most once, with the same
  character rules as bodies.

A route declared with `allow(..., signed_webhook=True)` also accepts, from a request without an
`Authorization` header, a Standard Webhooks signature over the raw body (verified at the token
step, against the runtime clock); the handler then sees `call.webhook` (its `webhook-id`) and the
principal `webhook` with the role Bot.Escalate. A request with an `Authorization` header is
always judged by its bearer token (wrong role: 403).
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared.auth.principal import Principal, Role
from shared.kernel.errors import (
    ConfigError,
    Forbidden,
    NotFound,
    NotLinked,
    PayloadTooLarge,
    PscError,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.kernel.observability import correlation_id_var, new_correlation_id, request_scope
from shared.runtime import Runtime, get_runtime
from shared.web.headers import ETAG, IF_MATCH, WEBHOOK_HEADERS, Header
from shared.web.problems import problem_response, validation_failed

if TYPE_CHECKING:
    from pydantic import BaseModel

    from shared.auth.webhook_auth import WebhookDelivery
    from shared.kernel.etags import IfMatch

log = logging.getLogger("psc.http")

MAX_BODY_BYTES = 256 * 1024
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_ROUTE_PARAM = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)")
# How a path parameter is checked unless the route says otherwise: "module:function" returning
# the value or raising ValueError, imported on first use (cold start stays free of pydantic).
ID_PARAM = "shared.kernel.ids:check_id"
EXTERNAL_ID_PARAM = "shared.kernel.ids:check_external_id"


@dataclass(frozen=True)
class Access:
    """Who may call a route: any of `roles`; `patient_param` names the route parameter holding a
    patient id, which a patient may only use for themselves (another id answers 404, not 403).
    `signed_webhook`: a request without an `Authorization` header may instead authenticate with
    a Standard Webhooks signature over its raw body (PSC_WEBHOOK_SECRET)."""

    roles: frozenset[str] = frozenset()
    patient_param: str | None = None
    public: bool = False
    signed_webhook: bool = False
    # A patient whose sign-in is not linked to a record yet may call it (only POST /api/me/link);
    # every other route answers such a patient 403 `not-linked`, saying how to link.
    unlinked_patients: bool = False


def allow(
    *roles: Role, patient: str | None = None, signed_webhook: bool = False, unlinked_patients: bool = False
) -> Access:
    return Access(
        roles=frozenset(str(r) for r in roles),
        patient_param=patient,
        signed_webhook=signed_webhook,
        unlinked_patients=unlinked_patients,
    )


# Who a signed webhook delivery acts as: the holder of the shared secret is the escalating bot.
WEBHOOK_PRINCIPAL = Principal(
    subject="webhook", name=None, roles=frozenset({str(Role.BOT)}), provider="webhook"
)


PUBLIC = Access(public=True)


@dataclass
class Reply:
    # bytes: sent as they are, with `content_type` (the dashboard's page and files).
    body: BaseModel | dict[str, Any] | list[Any] | bytes | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # None: the route's declared media type.
    content_type: str | None = None


class UndeclaredHeader(LookupError):
    """A handler read a header its route does not declare (a programming error: the OpenAPI
    document would not say the route reads it)."""


@dataclass
class Call:
    request: func.HttpRequest
    runtime: Runtime
    correlation_id: str
    principal: Principal | None
    body: Any = None
    query: Any = None
    # Set when the caller authenticated with a webhook signature (its `webhook-id` and time).
    webhook: WebhookDelivery | None = None
    # The request headers the route declares (lower-case names): the only ones `header` reads.
    declared_headers: frozenset[str] = frozenset()
    # The path parameters as their checkers returned them (checked once, at the edge).
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "route is public"
        return self.principal

    def route(self, name: str) -> str:
        """A path parameter, as the route's checker returned it (every one is checked before the
        handler runs; shared/kernel/ids.py by default)."""
        value = self.params.get(name, self.request.route_params[name])
        return str(value)

    def header(self, name: str) -> str | None:
        """A request header the route declares in `Api.route(headers=...)`; reading any other
        raises UndeclaredHeader, so the OpenAPI document lists every header a route reads."""
        if name.lower() not in self.declared_headers:
            raise UndeclaredHeader(f"the route does not declare the request header {name!r}")
        return self.request.headers.get(name)

    @property
    def if_match(self) -> IfMatch | None:
        """The request's `If-Match` (None: unconditional); a malformed one is a 400."""
        from shared.kernel.etags import IfMatch

        return IfMatch.parse(self.header("if-match"))

    def own_patient_id(self) -> str:
        """The caller's patient id (a patient token without one cannot use patient routes)."""
        if not self.user.patient_id:
            raise Forbidden("The token carries no patient_id claim.")
        return self.user.patient_id


Handler = Callable[[Call], Awaitable["BaseModel | Reply | None"]]


@cache
def _import_model(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def resolve_model(ref: type[BaseModel] | str) -> type[BaseModel]:
    """A model class, or "module:Class" imported on first use."""
    if isinstance(ref, str):
        model: type[BaseModel] = _import_model(ref)
        return model
    return ref


@dataclass(frozen=True)
class RouteSpec:
    route: str
    method: str
    name: str
    summary: str
    tag: str
    access: Access
    body: type[BaseModel] | str | None
    query: type[BaseModel] | str | None
    response: type[BaseModel] | str | None
    status: int
    errors: tuple[int, ...]
    description: str = ""
    # Other success statuses the route answers with the same response model: (status, meaning).
    also: tuple[tuple[int, str], ...] = ()
    # Every path parameter with the checker it must pass ("module:function").
    params: tuple[tuple[str, str], ...] = ()
    # Request headers the handler reads, and headers its success answers carry (shared/web/headers.py).
    headers: tuple[Header, ...] = ()
    response_headers: tuple[Header, ...] = ()
    # Media type of the success body.
    media_type: str = "application/json"

    def request_headers(self) -> tuple[Header, ...]:
        """Every request header the route reads: its own, and the webhook signature's."""
        return self.headers + (WEBHOOK_HEADERS if self.access.signed_webhook else ())


ROUTES: list[RouteSpec] = []


class Api:
    """Registers routes on one blueprint; `functions/<capability>.py` owns one."""

    def __init__(self, blueprint: func.Blueprint, tag: str) -> None:
        self.blueprint = blueprint
        self.tag = tag

    def route(
        self,
        route: str,
        method: str,
        *,
        access: Access,
        summary: str,
        body: type[BaseModel] | str | None = None,
        query: type[BaseModel] | str | None = None,
        response: type[BaseModel] | str | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        also: tuple[tuple[int, str], ...] = (),
        params: dict[str, str] | None = None,
        headers: tuple[Header, ...] = (),
        response_headers: tuple[Header, ...] = (),
        media_type: str = "application/json",
        etag: bool = False,
        if_match: bool = False,
    ) -> Callable[[Handler], Any]:
        """`params` overrides the checker of a path parameter (every one is an `Id` otherwise):
        e.g. `{"botConversationId": EXTERNAL_ID_PARAM}`. `headers` are the request headers the
        handler reads (`call.header`), `response_headers` those its success answers carry, both
        from shared/web/headers.py: `headers=(IF_MATCH,), response_headers=(ETAG,)`.
        The handler's docstring is the operation's description in the OpenAPI document."""
        names = _ROUTE_PARAM.findall(route)
        unknown = set(params or {}) - set(names)
        if unknown:
            raise ValueError(f"route {route!r} has no parameter {sorted(unknown)}")
        checked = tuple((name, (params or {}).get(name, ID_PARAM)) for name in names)
        # `etag`: the answer carries the document's ETag; `if_match`: the route also honours
        # If-Match (412 on mismatch). Both only add to the declared headers and answers.
        if if_match:
            headers = _with(headers, IF_MATCH)
            errors = errors if 412 in errors else (*errors, 412)
        if etag or if_match:
            response_headers = _with(response_headers, ETAG)

        def decorate(handler: Handler) -> Any:
            spec = RouteSpec(
                route=route,
                method=method.upper(),
                name=handler.__name__,
                summary=summary,
                tag=self.tag,
                access=access,
                body=body,
                query=query,
                response=response,
                status=status,
                errors=errors,
                description=inspect.cleandoc(handler.__doc__ or ""),
                also=also,
                params=checked,
                headers=headers,
                response_headers=response_headers,
                media_type=media_type,
            )

            # The worker binds by parameter name (`req`), so this must not use functools.wraps:
            # inspect.signature would follow __wrapped__ to the handler's signature.
            async def entry(req: func.HttpRequest) -> func.HttpResponse:
                return await dispatch(spec, handler, req)

            entry.__name__ = entry.__qualname__ = handler.__name__
            entry.__doc__ = handler.__doc__
            ROUTES.append(spec)
            return self.blueprint.route(
                route=route, methods=[spec.method], auth_level=func.AuthLevel.ANONYMOUS
            )(entry)

        return decorate


def _with(declared: tuple[Header, ...], header: Header) -> tuple[Header, ...]:
    return declared if header in declared else (*declared, header)


def _correlation_id(req: func.HttpRequest) -> str:
    given = req.headers.get("x-correlation-id")
    if given and _CORRELATION_ID.match(given):
        return given
    return new_correlation_id()


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _check_roles(spec: RouteSpec, principal: Principal) -> None:
    if not (principal.roles & spec.access.roles):
        raise Forbidden("Your roles do not allow this operation.")


async def _with_link(runtime: Runtime, principal: Principal) -> Principal:
    """A patient whose token names no record: the record their sign-in is linked to, if any
    (one point read)."""
    from shared.patients.api import linked_patient

    patient_id = await linked_patient(runtime.store, principal)
    return replace(principal, patient_id=patient_id) if patient_id else principal


def _check_patient(spec: RouteSpec, principal: Principal, req: func.HttpRequest) -> None:
    if principal.needs_link and not spec.access.unlinked_patients:
        raise NotLinked()
    if spec.access.patient_param and principal.acts_as_patient_only:
        wanted = req.route_params.get(spec.access.patient_param)
        if not principal.patient_id or wanted != principal.patient_id:
            # 404, not 403: a patient must not learn whether another patient's record exists.
            raise NotFound("No such patient.")


def _verify_webhook(runtime: Runtime, req: func.HttpRequest, raw: bytes) -> WebhookDelivery:
    from shared.auth.webhook_auth import WebhookRejected, verify_webhook

    try:
        return verify_webhook(runtime.settings.webhook_secret, raw, req.headers, runtime.clock.now())
    except WebhookRejected as rejected:
        # A fixed reason code for ops; the caller only ever sees the same 401.
        level = logging.WARNING if rejected.reason == "secret-not-configured" else logging.INFO
        log.log(level, "webhook signature rejected", extra={"reason": rejected.reason})
        raise


def _field(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if path else prefix


def _parse_params(spec: RouteSpec, req: func.HttpRequest) -> dict[str, Any]:
    errors = []
    checked: dict[str, Any] = {}
    for name, ref in spec.params:
        value = req.route_params.get(name)
        if value is None:
            continue
        try:
            checked[name] = _import_model(ref)(value)
        except ValueError as error:
            errors.append({"field": name, "message": str(error)})
    if errors:
        raise ValidationFailed(errors)
    return checked


def _read(raw: bytes, prefix: str) -> Any:
    from shared.kernel.json_reader import JsonRejected, read_json

    try:
        return read_json(raw, max_bytes=MAX_BODY_BYTES)
    except JsonRejected as rejected:
        raise ValidationFailed(
            [{"field": _field(prefix, rejected.path), "message": rejected.message}]
        ) from None


def _parse_body(spec: RouteSpec, req: func.HttpRequest, raw: bytes) -> Any:
    if spec.body is None:
        # An action without a body (accept, cancel, ...): nothing, or an empty object.
        if raw.strip() and _read(raw, "body") != {}:
            raise ValidationFailed(
                [{"field": "body", "message": "This operation takes no body (send none or {})."}]
            )
        return None
    if not raw.strip():
        raise ValidationFailed([{"field": "body", "message": "A JSON body is required."}])
    if not _is_json(req.headers.get("content-type")):
        raise UnsupportedMediaType("Send the body as application/json.")
    _read(raw, "body")  # size, depth, duplicate keys, characters: before any model sees it
    from pydantic import ValidationError

    try:
        # Strict: a JSON true is not 1 and "3" is not 3. Dates and enums still come as strings.
        return resolve_model(spec.body).model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise validation_failed(exc, "body") from None


def _repeated_keys(url: str) -> list[str]:
    """Query keys given more than once (the worker hands a function only one value per key)."""
    counts = Counter(key for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return [key for key, count in counts.items() if count > 1]


def _parse_query(spec: RouteSpec, req: func.HttpRequest) -> Any:
    if spec.query is None:
        return None
    from shared.kernel.text import TEXT_RULE, text_problem

    errors = [
        {"field": _field("query", _label(key)), "message": "is given more than once"}
        for key in _repeated_keys(req.url)
    ]
    errors += [
        {"field": _field("query", _label(key)), "message": TEXT_RULE}
        for key, value in req.params.items()
        if text_problem(key) or text_problem(value)
    ]
    if errors:
        raise ValidationFailed(errors)
    from pydantic import ValidationError

    try:
        # Lax: a query string is text by nature, parsed into the model's types (?maxItems=50).
        return resolve_model(spec.query).model_validate(dict(req.params))
    except ValidationError as exc:
        raise validation_failed(exc, "query") from None


def _label(key: str) -> str:
    return key if key.isidentifier() and len(key) <= 64 else "(parameter)"


def _to_response(spec: RouteSpec, result: BaseModel | Reply | None, correlation_id: str) -> func.HttpResponse:
    reply = result if isinstance(result, Reply) else Reply(body=result, status=spec.status)
    headers = {"x-correlation-id": correlation_id, "Cache-Control": "no-store", **reply.headers}
    if reply.body is None:
        status = 204 if reply.status == 200 else reply.status
        return func.HttpResponse(status_code=status, headers=headers)
    if isinstance(reply.body, bytes):
        return func.HttpResponse(
            reply.body,
            status_code=reply.status,
            mimetype=reply.content_type or spec.media_type,
            headers=headers,
        )
    if hasattr(reply.body, "model_dump"):  # a pydantic model
        payload: Any = reply.body.model_dump(mode="json", exclude_none=True)
    else:
        payload = reply.body
    return func.HttpResponse(
        json.dumps(payload),
        status_code=reply.status,
        mimetype=reply.content_type or spec.media_type,
        headers=headers,
    )


async def dispatch(spec: RouteSpec, handler: Handler, req: func.HttpRequest) -> func.HttpResponse:
    correlation_id = _correlation_id(req)
    with request_scope(correlation_id):
        try:
            raw = req.get_body() or b""
            if len(raw) > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"Bodies are limited to {MAX_BODY_BYTES // 1024} KiB.")
            runtime = await get_runtime()
            principal = None
            webhook = None
            if spec.access.signed_webhook and not req.headers.get("authorization"):
                webhook = _verify_webhook(runtime, req, raw)
                principal = WEBHOOK_PRINCIPAL
            elif not spec.access.public:
                principal = await runtime.validator.validate(req.headers.get("authorization"))
                _check_roles(spec, principal)
                if principal.needs_link:
                    principal = await _with_link(runtime, principal)
                _check_patient(spec, principal, req)
            params = _parse_params(spec, req)
            call = Call(
                request=req,
                runtime=runtime,
                correlation_id=correlation_id,
                principal=principal,
                body=_parse_body(spec, req, raw),
                query=_parse_query(spec, req),
                webhook=webhook,
                declared_headers=frozenset(h.key for h in spec.request_headers()),
                params=params,
            )
            result = await handler(call)
            return _to_response(spec, result, correlation_id)
        except PscError as error:
            if error.status >= 500:
                log.warning(
                    "request failed",
                    extra={"function": spec.name, "status": error.status, "error_type": error.slug},
                )
            return problem_response(error, correlation_id=correlation_id)
        except ConfigError as error:
            # The message names the setting, never its value.
            log.error("configuration invalid: " + str(error), extra={"function": spec.name})
            return problem_response(PscError("The service is misconfigured."), correlation_id=correlation_id)
        except Exception as error:
            log.exception(
                "unhandled error",
                extra={"function": spec.name, "error_type": type(error).__name__},
            )
            return problem_response(PscError("An unexpected error occurred."), correlation_id=correlation_id)


def current_correlation_id() -> str | None:
    return correlation_id_var.get()
