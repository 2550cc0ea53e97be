"""Reads a FunctionApp's registered functions once and turns them into what the dev host runs.

Every problem found (an unsupported binding, a `%SETTING%` that is not set, a bad schedule or
route) is collected and reported together, so one start attempt shows everything to fix.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.functions.decorators.http import HttpOutput, HttpTrigger
from azure.functions.decorators.servicebus import ServiceBusQueueTrigger
from azure.functions.decorators.timer import TimerTrigger

from devhost.errors import StartError
from devhost.routes import RouteTemplate
from devhost.schedules import Schedule

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


@dataclass(frozen=True)
class QueueFunction:
    """A Service Bus queue-triggered function and the queue it reads (settings resolved)."""

    target: Target
    queue_name: str
    queue_setting: str  # the trigger's queue name as written, e.g. %ROUTING_QUEUE%


@dataclass(frozen=True)
class DiscoveredApp:
    """The app's functions by trigger kind, in registration order."""

    http: tuple[HttpFunction, ...] = ()
    timers: tuple[TimerFunction, ...] = ()
    queues: tuple[QueueFunction, ...] = ()
    disabled: tuple[str, ...] = ()


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
    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    queues: list[QueueFunction] = []
    disabled: list[str] = []
    for function in app.get_functions():
        name = function.get_function_name()
        if environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1"):
            disabled.append(name)
            continue
        try:
            found = _discover_one(function, name, environ)
        except StartError as exc:
            problems.append(str(exc))
            continue
        if isinstance(found, HttpFunction):
            http.append(found)
        elif isinstance(found, TimerFunction):
            timers.append(found)
        else:
            queues.append(found)
    if problems:
        raise StartError("the function app cannot be served:\n  " + "\n  ".join(problems))
    return DiscoveredApp(tuple(http), tuple(timers), tuple(queues), tuple(disabled))


def resolve_settings(text: str, environ: Mapping[str, str], *, what: str) -> str:
    """Replace each `%NAME%` with the app setting NAME, as the host does for trigger properties."""

    def replace(match: re.Match[str]) -> str:
        setting = match.group(1)
        value = environ.get(setting)
        if value is None or value == "":
            raise StartError(f"{what} refers to app setting {setting}, which is not set")
        return value

    return _SETTING_REFERENCE.sub(replace, text)


def _discover_one(
    function: Any, name: str, environ: Mapping[str, str]
) -> HttpFunction | TimerFunction | QueueFunction:
    trigger = function.get_trigger()
    bindings = [b for b in function.get_bindings() if b is not trigger]
    if isinstance(trigger, HttpTrigger):
        _only_return_output(name, bindings)
    else:
        _no_other_bindings(name, bindings)
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
        return HttpFunction(target, template, _methods(trigger.methods))
    if isinstance(trigger, TimerTrigger):
        text = resolve_settings(trigger.schedule, environ, what=f"function {name}: schedule")
        try:
            schedule = Schedule.parse(text, time_zone=environ.get("WEBSITE_TIME_ZONE") or None)
        except StartError as exc:
            raise StartError(f"function {name}: {exc}") from None
        return TimerFunction(target, schedule, text, bool(trigger.run_on_startup))
    if isinstance(trigger, ServiceBusQueueTrigger):
        if trigger.is_sessions_enabled:
            raise StartError(
                f"function {name}: session-enabled queue triggers are not supported by the dev host"
            )
        cardinality = getattr(trigger.cardinality, "value", trigger.cardinality)
        if cardinality is not None and str(cardinality).lower() == "many":
            raise StartError(f"function {name}: batch (cardinality=many) queue triggers are not supported")
        queue = resolve_settings(trigger.queue_name, environ, what=f"function {name}: queue_name")
        return QueueFunction(target, queue, trigger.queue_name)
    raise StartError(
        f"function {name}: trigger {trigger.get_binding_name()!r} is not supported by the dev host "
        "(it runs HTTP, timer and Service Bus queue triggers); use `func start` for this one"
    )


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
