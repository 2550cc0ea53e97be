"""Exports on Azure Blob Storage: the `exports` container (`EXPORTS_CONTAINER`) of the archive's
account, through the managed identity (the app's Storage Blob Data Owner role covers it; Bicep
creates the container). Reuses the archive adapter's client, credential and error mapping; only
the write differs: an export replaces its blob (`overwrite=True`), the archive never does."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError

from shared.adapters.blob_archive import BlobArchive, _raise_mapped
from shared.kernel.archive import check_archive_name
from shared.kernel.errors import NotFound

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

DEFAULT_CONTAINER = "exports"


class BlobExports(BlobArchive):
    """Implements `shared.kernel.exports.Exports` on one blob container."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobExports:
        from shared.adapters.azure_credentials import azure_credential, is_azurite_connection
        from shared.config import running_in_azure
        from shared.kernel.errors import ConfigError

        container = settings.exports_container or DEFAULT_CONTAINER
        connection = settings.archive_connection_string
        if connection and not running_in_azure():
            if not is_azurite_connection(connection):
                raise ConfigError("ARCHIVE_CONNECTION_STRING: only Azurite's connection string is accepted")
            return cls(container, connection_string=connection, create_container=True)
        account_url = settings.archive_blob_service_uri or settings.webjobs_blob_service_uri
        if not account_url:
            raise ConfigError("ARCHIVE__blobServiceUri: required for the blob exports")
        return cls(container, account_url=account_url, credential=lambda: azure_credential(settings))

    async def write(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        from azure.storage.blob import ContentSettings

        check_archive_name(name)
        container = await self._client()
        try:
            # One request up to the SDK's single-put limit, else blocks committed by one Put Block
            # List: either way readers see the old blob or the new one.
            blob = await container.upload_blob(
                name, data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
            )
        except AzureError as exc:
            _raise_mapped(exc)
        log.info("export written", extra={"export_name": name, "bytes": len(data)})
        return str(blob.url)

    async def read(self, name: str) -> bytes:
        try:
            return await self.get(name)
        except NotFound:
            raise NotFound("No export with this name.") from None
