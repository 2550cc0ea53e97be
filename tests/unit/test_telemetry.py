"""Telemetry export is on only with a connection string, authenticates with Entra, and its log
handler carries the PHI filter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from shared import telemetry
from shared.kernel.observability import PHI_FILTER
from tests.conftest import make_settings


def test_no_connection_string_means_no_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_configured", False)
    called: list[Any] = []
    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: called.append(kw))
    assert telemetry.configure_telemetry(make_settings(tmp_path)) is False
    assert called == []


def test_export_uses_a_credential_and_filters_phi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    monkeypatch.delenv("WEBSITE_SITE_NAME", raising=False)
    calls: list[dict[str, Any]] = []
    handler = logging.NullHandler()

    def fake_configure(**kwargs: Any) -> None:
        calls.append(kwargs)
        logging.getLogger("psc").addHandler(handler)

    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", fake_configure)
    settings = make_settings(
        tmp_path,
        APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=00000000-0000-0000-0000-000000000000",
    )
    try:
        assert telemetry.configure_telemetry(settings) is True
        assert telemetry.configure_telemetry(settings) is True  # idempotent
        assert len(calls) == 1
        assert calls[0]["logger_name"] == "psc"
        assert calls[0]["credential"] is not None  # Entra auth: local auth is off in our infra
        assert PHI_FILTER in handler.filters
    finally:
        logging.getLogger("psc").removeHandler(handler)
