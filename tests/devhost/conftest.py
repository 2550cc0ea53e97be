"""Helpers for dev host tests: tiny FunctionApps built in the test, served in-process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import azure.functions as func
import httpx
import pytest

from devhost.discovery import DiscoveredApp, discover
from devhost.http_host import HttpHost
from devhost.invocation import Invoker
from shared.config import get_settings
from shared.runtime import Runtime


def new_app() -> func.FunctionApp:
    return func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def discovered(app: func.FunctionApp, environ: Mapping[str, str] | None = None) -> DiscoveredApp:
    return discover(app, environ if environ is not None else {})


def http_client(
    app: func.FunctionApp,
    *,
    runtime: Runtime | None = None,
    route_prefix: str = "api",
    **host_options: Any,
) -> httpx.AsyncClient:
    host = HttpHost(discovered(app).http, Invoker(runtime), route_prefix=route_prefix, **host_options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://testserver")


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """The CLI writes settings into os.environ and the app root into sys.path; undo both."""
    saved = dict(os.environ)
    saved_path = list(sys.path)
    get_settings.cache_clear()
    yield
    os.environ.clear()
    os.environ.update(saved)
    sys.path[:] = saved_path
    get_settings.cache_clear()
