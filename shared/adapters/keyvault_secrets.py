"""Secrets in Azure Key Vault, through the managed identity (role Key Vault Secrets Officer on the
vault: the API writes them; Bicep assigns it). The client is created on first use.

Needs `azure-keyvault-secrets` (not yet in requirements.in: imported here only, so nothing else
loads it). Its async `SecretClient` is used as documented: `set_secret(name, value,
content_type=)`, `get_secret(name).value`, `ResourceNotFoundError` for an absent secret; verified
by reading its documentation, not against a vault.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from shared.adapters.azure_credentials import azure_credential, close_quietly
from shared.kernel.errors import ConfigError, Unavailable
from shared.kernel.secrets import check_name

if TYPE_CHECKING:
    from shared.config import Settings


class KeyVaultSecrets:
    def __init__(self, vault_url: str, credential_factory: Any, *, client: Any = None) -> None:
        self._vault_url = vault_url
        self._credential_factory = credential_factory
        self._credential: Any = None
        self._client: Any = client
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyVaultSecrets:
        if not settings.key_vault_uri:
            raise ConfigError("PSC_KEY_VAULT_URI is required with PSC_SECRETS=keyvault")
        return cls(settings.key_vault_uri, lambda: azure_credential(settings))

    async def _secrets(self) -> Any:
        async with self._lock:
            if self._client is None:
                try:
                    from azure.keyvault.secrets.aio import SecretClient
                except ImportError:
                    raise ConfigError(
                        "PSC_SECRETS=keyvault needs the azure-keyvault-secrets package"
                    ) from None
                self._credential = self._credential_factory()
                self._client = SecretClient(vault_url=self._vault_url, credential=self._credential)
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
