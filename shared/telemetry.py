"""OpenTelemetry export to Application Insights, when APPLICATIONINSIGHTS_CONNECTION_STRING is set.

Application Insights has local (key) auth disabled in our infra, so the exporter authenticates with
the user-assigned identity in Azure. Only the `psc` loggers are exported, and their handler carries
the PHI filter like every other handler (shared/kernel/observability.py). Spans carry ids only: our code
never puts payloads into span attributes, and HTTP URL attributes hold route templates' values,
which are ids, never query strings with PHI (our APIs take PHI only in bodies).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.config import Settings, running_in_azure
from shared.kernel.observability import PHI_FILTER

_configured = False


def _credential(settings: Settings) -> Any:
    # The exporter needs a synchronous credential (the adapters use the aio ones).
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if running_in_azure():
        return ManagedIdentityCredential(client_id=settings.azure_client_id)
    return DefaultAzureCredential()


def configure_telemetry(settings: Settings) -> bool:
    """Idempotent; returns whether export is on. Called when the runtime is built, never at import."""
    global _configured
    if _configured or not settings.appinsights_connection_string:
        return _configured
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=settings.appinsights_connection_string,
        credential=_credential(settings),
        logger_name="psc",
        enable_live_metrics=False,
    )
    for handler in logging.getLogger("psc").handlers:
        if PHI_FILTER not in handler.filters:
            handler.addFilter(PHI_FILTER)
    _configured = True
    return True
