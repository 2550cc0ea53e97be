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
    def from_settings(cls, settings: Settings, *, container: str | None = None) -> BlobExports:
        """The exports on `container` (default `EXPORTS_CONTAINER`) of the archive's account."""
        built = super().from_settings(
            settings, container=container or settings.exports_container or DEFAULT_CONTAINER
        )
        assert isinstance(built, BlobExports)  # the archive's factory builds `cls`
        return built

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
