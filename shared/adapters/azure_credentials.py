"""Which credential an Azure adapter uses.

In Azure: the user-assigned managed identity named by `AZURE_CLIENT_ID` (never a key: local auth is
disabled on every account). On a laptop: `DefaultAzureCredential` (az login, VS Code, environment).
Keys and connection strings are accepted only for the local emulators (Cosmos DB emulator,
Service Bus emulator, Azurite), whose well-known secrets are public.

Imported only by the Azure adapters, so `azure.identity` stays off the embedded cold path.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.config import Settings, running_in_azure
from shared.kernel.errors import ConfigError

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

# Published in Microsoft's emulator documentation; it grants access to nothing but a local emulator.
COSMOS_EMULATOR_WELL_KNOWN_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)
COSMOS_EMULATOR_KEY_SETTING = "COSMOS_EMULATOR_KEY"

_LOCAL_HOSTS = frozenset({"localhost", "host.docker.internal"})


log = logging.getLogger(__name__)


def is_local_endpoint(url_or_host: str) -> bool:
    """True for loopback / local-container hosts, where only an emulator can be listening."""
    host = urlsplit(url_or_host).hostname if "://" in url_or_host else url_or_host.split(":")[0]
    if not host:
        return False
    host = host.lower()
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def azure_credential(settings: Settings) -> AsyncTokenCredential:
    """A new token credential; the adapter that asked owns it and closes it."""
    if running_in_azure():
        from azure.identity.aio import ManagedIdentityCredential

        if not settings.azure_client_id:
            raise ConfigError("AZURE_CLIENT_ID: required in Azure (the user-assigned managed identity)")
        return ManagedIdentityCredential(client_id=settings.azure_client_id)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


def cosmos_emulator_key(settings: Settings) -> str | None:
    """The account key to use, or None for token auth.

    Only an emulator endpoint (a loopback host) gets a key, and never inside Azure, so a key can never
    be used against a real account even if `COSMOS_EMULATOR_KEY` leaks into production settings.
    """
    endpoint = settings.cosmos_endpoint
    if not endpoint or running_in_azure() or not is_local_endpoint(endpoint):
        return None
    # getattr: tolerate a Settings without the field (it is added to shared/config.py separately).
    configured: str | None = settings.cosmos_emulator_key
    return configured or COSMOS_EMULATOR_WELL_KNOWN_KEY


def is_servicebus_emulator_connection(connection_string: str) -> bool:
    parts = _connection_string_parts(connection_string)
    return parts.get("usedevelopmentemulator", "").lower() == "true"


def is_azurite_connection(connection_string: str) -> bool:
    parts = _connection_string_parts(connection_string)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return True
    if parts.get("accountname") != "devstoreaccount1":
        return False
    endpoint = parts.get("blobendpoint")
    return endpoint is None or is_local_endpoint(endpoint)


def _connection_string_parts(connection_string: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for segment in connection_string.split(";"):
        key, sep, value = segment.partition("=")
        if sep:
            parts[key.strip().lower()] = value.strip()
    return parts


async def close_quietly(resource: Any) -> None:
    """Close an SDK client, credential, sender or receiver; closing is best effort (the connection
    or link may already be gone), so a failure is logged at debug level and swallowed."""
    close = getattr(resource, "close", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        log.debug("closing %s failed", type(resource).__name__, exc_info=True)
