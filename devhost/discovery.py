"""Reads a FunctionApp's registered functions once and turns them into what the dev host runs:
HTTP, timer, Service Bus queue and topic (with or without sessions), Cosmos DB (change feed) and
Event Grid triggers.

Every problem found (an unsupported binding, a `%SETTING%` that is not set, a bad schedule, route,
retry policy or trigger option) is collected and reported together, so one start attempt shows
everything to fix.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.functions.decorators.cosmosdb import CosmosDBTrigger, CosmosDBTriggerV3
from azure.functions.decorators.eventgrid import EventGridTrigger
from azure.functions.decorators.http import HttpOutput, HttpTrigger
from azure.functions.decorators.servicebus import ServiceBusQueueTrigger, ServiceBusTopicTrigger
from azure.functions.decorators.timer import TimerTrigger

from devhost.errors import StartError
from devhost.retry import RETRY_POLICY_SETTING, RetryPolicy, parse_retry_policy
from devhost.routes import RouteTemplate
from devhost.schedules import Schedule
from shared.kernel.messages import subscription_entity

_SETTING_REFERENCE = re.compile(r"%([^%]+)%")
# The Functions host refuses to load an HTTP function whose route template starts with one of these
# (ScriptHost.ValidateHttpFunction: a plain prefix match after trimming '/', routePrefix ignored). It
# starts without it and the route answers 404; we refuse to start, so the mistake shows here first.
RESERVED_ROUTE_PREFIXES = ("admin", "runtime")
# The Python worker passes an invocation context to a parameter with this name.
CONTEXT_PARAMETER = "context"


@dataclass(frozen=True)
class Target:
    """A user function and how to call it: its trigger argument, and whether it wants `context`."""

    name: str
    user_function: Callable[..., Any]
    arg_name: str
    wants_context: bool

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function: its compiled route and accepted methods."""

    target: Target
    route: RouteTemplate
    methods: frozenset[str] | None  # None: every method


@dataclass(frozen=True)
class TimerFunction:
    """A timer-triggered function with its schedule (settings already resolved)."""

    target: Target
    schedule: Schedule
    schedule_text: str
    run_on_startup: bool
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class QueueFunction:
    """A Service Bus queue-triggered function and the queue it reads (settings resolved)."""

    target: Target
    queue_name: str
    queue_setting: str  # the trigger's queue name as written, e.g. %ROUTING_QUEUE%

    @property
    def entity(self) -> str:
        return self.queue_name

    def describe(self) -> str:
        return f"queue {self.queue_name!r}"


@dataclass(frozen=True)
class TopicFunction:
    """A Service Bus topic-triggered function: the subscription it reads (settings resolved)."""

    target: Target
    topic_name: str
    subscription_name: str
    topic_setting: str  # as written, e.g. %EVENTS_TOPIC%
    subscription_setting: str
    sessions: bool = False

    @property
    def entity(self) -> str:
        return subscription_entity(self.topic_name, self.subscription_name)

    def describe(self) -> str:
        sessions = ", sessions" if self.sessions else ""
        return f"topic {self.topic_name!r}, subscription {self.subscription_name!r}{sessions}"


@dataclass(frozen=True)
class ChangeFeedFunction:
    """A Cosmos DB-triggered function: the container whose change feed it reads, its lease, and the
    trigger options the dev host honours (defaults as the extension's: poll 5 s after the feed is
    drained, lease expiry 60 s, renewal every 17 s, acquire attempts every 13 s)."""

    target: Target
    container: str
    database: str
    lease_container: str = "leases"
    lease_prefix: str = ""
    max_items: int = 100  # unset in the trigger: the dev host reads pages of 100
    poll_delay: timedelta = timedelta(milliseconds=5000)
    start_from_beginning: bool = False
    lease_expiration: timedelta = timedelta(milliseconds=60000)
    lease_renew: timedelta = timedelta(milliseconds=17000)
    lease_acquire: timedelta = timedelta(milliseconds=13000)
    retry: RetryPolicy | None = None

    @property
    def lease_id(self) -> str:
        return f"{self.lease_prefix}{self.database}.{self.container}"

    def describe(self) -> str:
        retry = f", {self.retry.describe()}" if self.retry else ", no retry policy: a failed batch is skipped"
        return (
            f"container {self.container!r}, lease {self.lease_container}/{self.lease_id},"
            f" polls every {self.poll_delay.total_seconds() * 1000:g} ms{retry}"
        )


def _milliseconds(value: Any, default: timedelta, what: str) -> timedelta:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StartError(f"{what} must be a positive number of milliseconds")
    return timedelta(milliseconds=value)


def _change_feed_function(
    target: Target, trigger: CosmosDBTrigger, environ: Mapping[str, str], retry: RetryPolicy | None
) -> ChangeFeedFunction:
    name = target.name
    what = f"function {name}"
    database = resolve_settings(trigger.database_name, environ, what=f"{what}: database_name")
    expected = environ.get("COSMOS_DATABASE") or "psc"
    for label, value in (("database_name", database), ("lease_database_name", trigger.lease_database_name)):
        if value is not None and resolve_settings(value, environ, what=f"{what}: {label}") != expected:
            raise StartError(
                f"{what}: {label} {value!r} is not the app's database {expected!r} (COSMOS_DATABASE)"
            )
    if trigger.create_lease_container_if_not_exists:
        raise StartError(
            f"{what}: create_lease_container_if_not_exists cannot work with an identity-based connection"
            " (data-plane RBAC cannot create containers); the lease container comes from Bicep"
        )
    if trigger.start_from_time is not None:
        raise StartError(f"{what}: start_from_time is not supported by the dev host")
    max_items = trigger.max_items_per_invocation
    if max_items is not None and (
        isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1
    ):
        raise StartError(f"{what}: max_items_per_invocation must be a positive whole number")
    defaults = ChangeFeedFunction(target, "", "")
    return ChangeFeedFunction(
        target,
        container=resolve_settings(trigger.container_name, environ, what=f"{what}: container_name"),
        database=database,
        lease_container=resolve_settings(
            trigger.lease_container_name or defaults.lease_container,
            environ,
            what=f"{what}: lease_container_name",
        ),
        lease_prefix=resolve_settings(trigger.lease_container_prefix or "", environ, what=f"{what}: prefix"),
        max_items=max_items or defaults.max_items,
        poll_delay=_milliseconds(trigger.feed_poll_delay, defaults.poll_delay, f"{what}: feed_poll_delay"),
        start_from_beginning=bool(trigger.start_from_beginning),
        lease_expiration=_milliseconds(
            trigger.lease_expiration_interval, defaults.lease_expiration, f"{what}: lease_expiration_interval"
        ),
        lease_renew=_milliseconds(
            trigger.lease_renew_interval, defaults.lease_renew, f"{what}: lease_renew_interval"
        ),
        lease_acquire=_milliseconds(
            trigger.lease_acquire_interval, defaults.lease_acquire, f"{what}: lease_acquire_interval"
        ),
        retry=retry,
    )


@dataclass(frozen=True)
class EventGridFunction:
    """An Event Grid-triggered function: invoked once per event POSTed to the host's webhook."""

    target: Target


@dataclass(frozen=True)
class DiscoveredApp:
    """The app's functions by trigger kind, in registration order. `retry_ignored` names functions
    whose retry policy the host does not apply to their trigger (see devhost.retry)."""

    http: tuple[HttpFunction, ...] = ()
    timers: tuple[TimerFunction, ...] = ()
    queues: tuple[QueueFunction, ...] = ()
    disabled: tuple[str, ...] = ()
    topics: tuple[TopicFunction, ...] = ()
    change_feeds: tuple[ChangeFeedFunction, ...] = ()
    event_grid: tuple[EventGridFunction, ...] = ()
    retry_ignored: tuple[str, ...] = ()


def load_app(spec: str) -> Any:
    """Import `module:attribute` (attribute defaults to `app`) and return the FunctionApp."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] and exc.name != module_name:
            raise
        raise StartError(
            f"cannot import {module_name!r}: run the dev host from the repository root, "
            "or name the app with --app module:attribute"
        ) from None
    app = getattr(module, attribute, None)
    if app is None or not callable(getattr(app, "get_functions", None)):
        raise StartError(f"{module_name}.{attribute} is not an azure.functions FunctionApp")
    return app


def discover(app: Any, environ: Mapping[str, str]) -> DiscoveredApp:
    """Call `app.get_functions()` (once: it is not idempotent) and validate every function."""
    problems: list[str] = []
    found_by_kind: dict[type, list[Any]] = {
        kind: [] for kind in (HttpFunction, TimerFunction, QueueFunction, TopicFunction, ChangeFeedFunction)
    }
    found_by_kind[EventGridFunction] = []
    disabled: list[str] = []
    retry_ignored: list[str] = []
    for function in app.get_functions():
        name = function.get_function_name()
        if environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1"):
            disabled.append(name)
            continue
        try:
            found, retry = _discover_one(function, name, environ)
        except StartError as exc:
            problems.append(str(exc))
            continue
        found_by_kind[type(found)].append(found)
        if retry is not None and not isinstance(found, TimerFunction | ChangeFeedFunction):
            retry_ignored.append(name)
    problems += _ambiguous_routes(found_by_kind[HttpFunction])
    if problems:
        raise StartError("the function app cannot be served:\n  " + "\n  ".join(problems))
    return DiscoveredApp(
        http=tuple(found_by_kind[HttpFunction]),
        timers=tuple(found_by_kind[TimerFunction]),
        queues=tuple(found_by_kind[QueueFunction]),
        disabled=tuple(disabled),
        topics=tuple(found_by_kind[TopicFunction]),
        change_feeds=tuple(found_by_kind[ChangeFeedFunction]),
        event_grid=tuple(found_by_kind[EventGridFunction]),
        retry_ignored=tuple(retry_ignored),
    )


def resolve_settings(text: str, environ: Mapping[str, str], *, what: str) -> str:
    """Replace each `%NAME%` with the app setting NAME, as the host does for trigger properties."""

    def replace(match: re.Match[str]) -> str:
        setting = match.group(1)
        value = environ.get(setting)
        if value is None or value == "":
            raise StartError(f"{what} refers to app setting {setting}, which is not set")
        return value

    return _SETTING_REFERENCE.sub(replace, text)


def _discover_one(function: Any, name: str, environ: Mapping[str, str]) -> tuple[Any, RetryPolicy | None]:
    trigger = function.get_trigger()
    bindings = [b for b in function.get_bindings() if b is not trigger]
    if isinstance(trigger, HttpTrigger):
        _only_return_output(name, bindings)
    else:
        _no_other_bindings(name, bindings)
    settings = (
        function.get_settings_dict(RETRY_POLICY_SETTING) if hasattr(function, "get_settings_dict") else None
    )
    retry = parse_retry_policy(settings, function=name)
    target = _target(name, function.get_user_function(), trigger.name)
    if isinstance(trigger, HttpTrigger):
        route = trigger.route if trigger.route is not None else name
        reserved = reserved_route_prefix(route)
        if reserved:
            raise StartError(
                f"function {name}: route {route!r} starts with {reserved!r}, which the Azure Functions "
                "host reserves (it would not load this function); administration lives under manage/"
            )
        try:
            template = RouteTemplate.parse(route)
        except StartError as exc:
            raise StartError(f"function {name}: {exc}") from None
        return HttpFunction(target, template, _methods(trigger.methods)), retry
    if isinstance(trigger, TimerTrigger):
        text = resolve_settings(trigger.schedule, environ, what=f"function {name}: schedule")
        try:
            schedule = Schedule.parse(text, time_zone=environ.get("WEBSITE_TIME_ZONE") or None)
        except StartError as exc:
            raise StartError(f"function {name}: {exc}") from None
        return TimerFunction(target, schedule, text, bool(trigger.run_on_startup), retry), retry
    if isinstance(trigger, ServiceBusQueueTrigger | ServiceBusTopicTrigger):
        cardinality = getattr(trigger.cardinality, "value", trigger.cardinality)
        if cardinality is not None and str(cardinality).lower() == "many":
            raise StartError(
                f"function {name}: batch (cardinality=many) Service Bus triggers are not supported"
            )
        if isinstance(trigger, ServiceBusTopicTrigger):
            topic = resolve_settings(trigger.topic_name, environ, what=f"function {name}: topic_name")
            sub = resolve_settings(
                trigger.subscription_name, environ, what=f"function {name}: subscription_name"
            )
            sessions = bool(trigger.is_sessions_enabled)
            return TopicFunction(
                target, topic, sub, trigger.topic_name, trigger.subscription_name, sessions
            ), retry
        if trigger.is_sessions_enabled:
            raise StartError(
                f"function {name}: session-enabled queue triggers are not supported by the dev host"
            )
        queue = resolve_settings(trigger.queue_name, environ, what=f"function {name}: queue_name")
        return QueueFunction(target, queue, trigger.queue_name), retry
    if isinstance(trigger, CosmosDBTrigger):
        return _change_feed_function(target, trigger, environ, retry), retry
    if isinstance(trigger, CosmosDBTriggerV3):
        raise StartError(
            f"function {name}: the v3 Cosmos DB trigger (collection_name) belongs to extension bundles"
            " before 4.x; use cosmos_db_trigger (container_name) with bundle 4.x"
        )
    if isinstance(trigger, EventGridTrigger):
        return EventGridFunction(target), retry
    raise StartError(
        f"function {name}: trigger {trigger.get_binding_name()!r} is not supported by the dev host "
        "(it runs HTTP, timer, Service Bus queue and topic, Cosmos DB and Event Grid triggers); "
        "use `func start` for this one"
    )


def _ambiguous_routes(functions: Sequence[HttpFunction]) -> list[str]:
    """Two functions that could both serve one request. The Functions host does not order routes
    by specificity as ASP.NET does: it picks by function name (azure-functions-host#9876, #6062),
    so which one answers depends on names. Refused here, so routes stay disjoint."""
    found = []
    for index, first in enumerate(functions):
        for second in functions[index + 1 :]:
            shared = _shared_methods(first.methods, second.methods)
            if shared and first.route.overlaps(second.route):
                found.append(
                    f"functions {first.target.name} and {second.target.name}: routes "
                    f"{first.route.template!r} and {second.route.template!r} can both match one path "
                    f"for {shared}; the Functions host would pick by function name, not by "
                    "specificity: make them disjoint (a different literal segment or a constraint)"
                )
    return found


def _shared_methods(first: frozenset[str] | None, second: frozenset[str] | None) -> str | None:
    if first is None or second is None:
        common = first or second
        return ",".join(sorted(common)) if common else "every method"
    common = first & second
    return ",".join(sorted(common)) if common else None


def reserved_route_prefix(route: str) -> str | None:
    """The reserved prefix `route` starts with (case-insensitive, as the host compares), or None."""
    trimmed = route.strip().strip("/").lower()
    return next((prefix for prefix in RESERVED_ROUTE_PREFIXES if trimmed.startswith(prefix)), None)


def _target(name: str, user_function: Callable[..., Any], arg_name: str) -> Target:
    parameters = inspect.signature(user_function).parameters
    wants_context = False
    for parameter in parameters.values():
        if parameter.name == arg_name:
            continue
        if parameter.name == CONTEXT_PARAMETER:
            wants_context = True
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is parameter.empty:
            raise StartError(
                f"function {name}: parameter {parameter.name!r} has no binding the dev host supports"
            )
    if arg_name not in parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        raise StartError(
            f"function {name}: the trigger argument {arg_name!r} is not a parameter of the function"
        )
    return Target(name, user_function, arg_name, wants_context)


def _only_return_output(name: str, bindings: Sequence[Any]) -> None:
    for binding in bindings:
        if isinstance(binding, HttpOutput) and binding.name == "$return":
            continue
        _unsupported(name, binding)


def _no_other_bindings(name: str, bindings: Sequence[Any]) -> None:
    for binding in bindings:
        _unsupported(name, binding)


def _unsupported(name: str, binding: Any) -> None:
    raise StartError(
        f"function {name}: binding {binding.get_binding_name()!r} ({binding.name}) is not supported by the "
        "dev host; use the runtime's ports instead of input/output bindings"
    )


def _methods(methods: Iterable[Any] | None) -> frozenset[str] | None:
    if not methods:
        return None
    return frozenset(str(getattr(method, "value", method)).upper() for method in methods)
