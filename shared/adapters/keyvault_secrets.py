"""Secrets in Azure Key Vault, through the managed identity (role Key Vault Secrets Officer on the
vault: the API writes them; Bicep assigns it). The client is created on first use.

`azure-keyvault-secrets` (requirements.in) is imported on first use, so only a host running with
PSC_SECRETS=keyvault loads it. Its async `SecretClient` is used as documented: `set_secret(name,
value, content_type=)`, `get_secret(name).value`, `ResourceNotFoundError` for an absent secret;
any other failure is `Unavailable` (503), a name Key Vault would refuse is a ValueError before any
request. tests/unit/test_keyvault_adapter.py runs the real client over a recording azure-core
transport (what is sent, what is read back); against a vault it is verified only by reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.adapters.azure_credentials import azure_credential, close_quietly
from shared.kernel.errors import ConfigError, Unavailable
from shared.kernel.secrets import check_name

if TYPE_CHECKING:
    from shared.config import Settings


class KeyVaultSecrets:
    def __init__(
        self, vault_url: str, credential_factory: Any, *, client_options: Mapping[str, Any] | None = None
    ) -> None:
        """`client_options`: azure-core client keywords (tests pass a `transport`)."""
        self._vault_url = vault_url
        self._credential_factory = credential_factory
        self._client_options = dict(client_options or {})
        self._credential: Any = None
        self._client: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyVaultSecrets:
        if not settings.key_vault_uri:
            raise ConfigError("PSC_KEY_VAULT_URI is required with PSC_SECRETS=keyvault")
        return cls(settings.key_vault_uri, lambda: azure_credential(settings))

    async def _secrets(self) -> Any:
        async with self._lock:
            if self._client is None:
                from azure.keyvault.secrets.aio import SecretClient

                self._credential = self._credential_factory()
                self._client = SecretClient(
                    vault_url=self._vault_url, credential=self._credential, **self._client_options
                )
            return self._client

    async def put(self, name: str, value: str) -> None:
        client = await self._secrets()
        try:
            await client.set_secret(check_name(name), value, content_type="text/plain")
        except Exception as exc:
            raise _unavailable(exc) from exc

    async def get(self, name: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        client = await self._secrets()
        try:
            secret = await client.get_secret(check_name(name))
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise _unavailable(exc) from exc
        return None if secret.value is None else str(secret.value)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await close_quietly(client)
        credential, self._credential = self._credential, None
        if credential is not None:
            await close_quietly(credential)


def _unavailable(exc: Exception) -> Exception:
    if isinstance(exc, ValueError):
        return exc
    return Unavailable(f"Key Vault is unavailable ({type(exc).__name__}).")
