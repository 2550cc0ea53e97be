"""Archive on Azure Blob Storage, through the async SDK.

Settings: `ARCHIVE__blobServiceUri` (the account's blob endpoint, identity-based like every other
connection; falls back to `AzureWebJobsStorage__blobServiceUri`), `ARCHIVE_CONTAINER` (default
`archive`; Bicep creates it) or, for transcripts, `TRANSCRIPTS_CONTAINER` (`transcripts`).
`ARCHIVE_CONNECTION_STRING` is accepted only for Azurite, where the container is created on first
use. Write-once is the service's: `put` sends `If-None-Match: *`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, NoReturn

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.kernel.archive import check_archive_name, check_archive_prefix, check_metadata
from shared.kernel.errors import ConfigError, Conflict, NotFound, Unavailable

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

DEFAULT_CONTAINER = "archive"


class BlobArchive:
    """Implements `shared.kernel.archive.Archive` on one blob container."""

    def __init__(
        self,
        container: str,
        *,
        account_url: str | None = None,
        credential: Any = None,
        connection_string: str | None = None,
        create_container: bool = False,
    ) -> None:
        """Either `account_url` + `credential` (a factory called on first use, returning an async
        token credential the archive then owns) or an Azurite `connection_string`.
        `create_container`: create the container on first use (Azurite only; Bicep owns it in Azure)."""
        if not 3 <= len(container) <= 63:
            raise ConfigError("ARCHIVE_CONTAINER: a blob container name has 3 to 63 characters")
        if not connection_string and not (account_url and credential):
            raise ValueError("an account URL with a credential, or an Azurite connection string, is required")
        self.container_name = container
        self._account_url = account_url
        self._credential_factory = credential
        self._connection_string = connection_string
        self._create_container = create_container
        self._credential: Any = None
        self._service: Any = None
        self._container: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, container: str | None = None) -> BlobArchive:
        """The archive on `container` (default `ARCHIVE_CONTAINER`) of the archive account."""
        from shared.adapters.azure_credentials import azure_credential, is_azurite_connection
        from shared.config import running_in_azure

        container = container or settings.archive_container or DEFAULT_CONTAINER
        connection: str | None = settings.archive_connection_string
        if connection and not running_in_azure():
            if not is_azurite_connection(connection):
                raise ConfigError("ARCHIVE_CONNECTION_STRING: only Azurite's connection string is accepted")
            return cls(container, connection_string=connection, create_container=True)
        account_url = settings.archive_blob_service_uri or settings.webjobs_blob_service_uri
        if not account_url:
            raise ConfigError("ARCHIVE__blobServiceUri: required for the blob archive")
        return cls(container, account_url=account_url, credential=lambda: azure_credential(settings))

    async def _client(self) -> Any:
        if self._container is not None:
            return self._container
        async with self._lock:
            if self._container is None:
                from azure.storage.blob.aio import BlobServiceClient

                if self._connection_string:
                    service = BlobServiceClient.from_connection_string(self._connection_string)
                else:
                    self._credential = self._credential_factory()
                    service = BlobServiceClient(str(self._account_url), credential=self._credential)
                container = service.get_container_client(self.container_name)
                if self._create_container:
                    try:
                        await container.create_container()
                    except ResourceExistsError:
                        pass
                    except AzureError as exc:
                        await service.close()
                        raise Unavailable("The archive cannot be reached.") from exc
                self._service, self._container = service, container
        return self._container

    async def put(
        self,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> str:
        from azure.storage.blob import ContentSettings

        check_archive_name(name)
        check_metadata(metadata or {})
        container = await self._client()
        try:
            blob = await container.upload_blob(
                name,
                data,
                overwrite=False,
                content_settings=ContentSettings(content_type=content_type),
                metadata=metadata or None,
            )
        except ResourceExistsError:
            raise Conflict("An archived object with this name exists.") from None
        except AzureError as exc:
            _raise_mapped(exc)
        log.info("archive object written", extra={"archive_name": name, "bytes": len(data)})
        return str(blob.url)

    async def get(self, name: str) -> bytes:
        check_archive_name(name)
        container = await self._client()
        try:
            downloader = await container.download_blob(name)
            return bytes(await downloader.readall())
        except ResourceNotFoundError:
            raise NotFound("No archived object with this name.") from None
        except AzureError as exc:
            _raise_mapped(exc)

    async def list(self, prefix: str = "") -> list[str]:
        check_archive_prefix(prefix)
        container = await self._client()
        try:
            return sorted([name async for name in container.list_blob_names(name_starts_with=prefix or None)])
        except AzureError as exc:
            _raise_mapped(exc)

    async def exists(self, name: str) -> bool:
        check_archive_name(name)
        container = await self._client()
        try:
            return bool(await container.get_blob_client(name).exists())
        except AzureError as exc:
            _raise_mapped(exc)

    async def delete(self, name: str) -> None:
        check_archive_name(name)
        container = await self._client()
        try:
            await container.delete_blob(name)
        except ResourceNotFoundError:
            raise NotFound("No archived object with this name.") from None
        except AzureError as exc:
            _raise_mapped(exc)

    async def close(self) -> None:
        service, self._service, self._container = self._service, None, None
        credential, self._credential = self._credential, None
        for resource in (service, credential):
            if resource is not None:
                try:
                    await resource.close()
                except Exception:  # best effort
                    log.debug("closing %s failed", type(resource).__name__, exc_info=True)


def _raise_mapped(exc: AzureError) -> NoReturn:
    if isinstance(exc, ServiceRequestError | ServiceResponseError | ClientAuthenticationError):
        raise Unavailable("The archive cannot be reached.") from exc
    status = getattr(exc, "status_code", None)
    if status is None or status in (401, 403, 408, 429) or status >= 500:
        raise Unavailable("The archive is unavailable.") from exc
    raise exc
