"""The two files `func start` reads besides the code: `local.settings.json` and `host.json`.

Values from `local.settings.json` go into `os.environ` without overriding variables that are
already set, as Core Tools does, so a shell export always wins over the file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from devhost.errors import StartError

logger = logging.getLogger("psc.devhost")

LOCAL_SETTINGS = "local.settings.json"
SAMPLE_SETTINGS = "local.settings.sample.json"

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2}(?:\.\d+)?))?$")


@dataclass(frozen=True)
class LocalSettings:
    """What a local settings file holds that the dev host uses."""

    path: Path | None
    values: dict[str, str] = field(default_factory=dict)
    local_http_port: int | None = None


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json that change how triggers behave."""

    route_prefix: str = "api"
    max_concurrent_calls: int = 16
    max_auto_lock_renewal: timedelta = timedelta(minutes=5)
    # Service Bus extension 5.x: `extensions.serviceBus.maxConcurrentSessions` (default 8) and
    # `sessionIdleTimeout` (default: the client's try timeout, 60 s).
    max_concurrent_sessions: int = 8
    session_idle_timeout: timedelta = timedelta(seconds=60)


def find_settings_file(explicit: Path | None, root: Path) -> Path | None:
    """`explicit` must exist; otherwise local.settings.json, else the committed sample, else none."""
    if explicit is not None:
        if not explicit.is_file():
            raise StartError(f"settings file {explicit} does not exist")
        return explicit
    for name in (LOCAL_SETTINGS, SAMPLE_SETTINGS):
        candidate = root / name
        if candidate.is_file():
            return candidate
    return None


def read_local_settings(path: Path | None) -> LocalSettings:
    if path is None:
        return LocalSettings(path=None)
    document = _read_json(path)
    raw_values = document.get("Values", {})
    if not isinstance(raw_values, dict):
        raise StartError(f'{path}: "Values" must be an object of setting names to strings')
    values: dict[str, str] = {}
    for name, value in raw_values.items():
        if isinstance(value, bool):
            values[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[name] = str(value)
        elif value is not None:
            raise StartError(f"{path}: setting {name} must be a string")
    host = document.get("Host", {})
    if not isinstance(host, dict):
        raise StartError(f'{path}: "Host" must be an object')
    for key in ("CORS", "CORSCredentials"):
        if host.get(key) not in (None, ""):
            # Core Tools' own CORS would differ from Azure's: one list, PSC_CORS_ORIGINS, is read.
            raise StartError(
                f"{path}: Host.{key} is not read by the dev host; list allowed origins in "
                "Values.PSC_CORS_ORIGINS (in Azure: the Bicep parameter corsAllowedOrigins)"
            )
    port = host.get("LocalHttpPort")
    return LocalSettings(
        path=path,
        values=values,
        local_http_port=int(port) if port not in (None, "") else None,
    )


def apply_to_environment(
    values: dict[str, str], environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Set each value unless the environment already has it; returns the names that were set."""
    env = os.environ if environ is None else environ
    applied = []
    for name, value in values.items():
        if name not in env:
            env[name] = value
            applied.append(name)
    return applied


def read_host_json(path: Path) -> HostConfig:
    if not path.is_file():
        return HostConfig()
    document = _read_json(path)
    extensions = document.get("extensions") or {}
    http = extensions.get("http") or {}
    service_bus = extensions.get("serviceBus") or {}
    defaults = HostConfig()
    prefix = http.get("routePrefix", defaults.route_prefix)
    calls = service_bus.get("maxConcurrentCalls", defaults.max_concurrent_calls)
    if not isinstance(calls, int) or calls < 1:
        raise StartError(f"{path}: extensions.serviceBus.maxConcurrentCalls must be a positive integer")
    sessions = service_bus.get("maxConcurrentSessions", defaults.max_concurrent_sessions)
    if not isinstance(sessions, int) or isinstance(sessions, bool) or sessions < 1:
        raise StartError(f"{path}: extensions.serviceBus.maxConcurrentSessions must be a positive integer")
    if "sessionHandlerOptions" in service_bus:
        # The 3.x extension's shape; bundle 4.x carries extension 5.x, which does not read it.
        logger.warning(
            "%s: extensions.serviceBus.sessionHandlerOptions is ignored by the Service Bus extension 5.x;"
            " use extensions.serviceBus.maxConcurrentSessions",
            path,
        )
    renewal = service_bus.get("maxAutoLockRenewalDuration")
    idle = service_bus.get("sessionIdleTimeout")
    return HostConfig(
        route_prefix=str(prefix).strip("/"),
        max_concurrent_calls=calls,
        max_auto_lock_renewal=(
            parse_timespan(str(renewal), what=f"{path}: extensions.serviceBus.maxAutoLockRenewalDuration")
            if renewal is not None
            else defaults.max_auto_lock_renewal
        ),
        max_concurrent_sessions=sessions,
        session_idle_timeout=(
            parse_timespan(str(idle), what=f"{path}: extensions.serviceBus.sessionIdleTimeout")
            if idle is not None
            else defaults.session_idle_timeout
        ),
    )


def parse_timespan(text: str, *, what: str = "TimeSpan") -> timedelta:
    """A .NET TimeSpan as host.json and timer schedules write it: `[d.]hh:mm[:ss[.fff]]`."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise StartError(f"{what}: {text!r} is not a TimeSpan like 00:05:00")
    return timedelta(
        days=int(match["days"] or 0),
        hours=int(match["h"]),
        minutes=int(match["m"]),
        seconds=float(match["s"] or 0),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        # utf-8-sig: files saved by Visual Studio on Windows start with a BOM.
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise StartError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict):
        raise StartError(f"{path} must hold a JSON object")
    return document
