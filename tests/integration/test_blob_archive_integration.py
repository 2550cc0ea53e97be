"""The blob archive built from settings against Azurite (the contract suite builds it directly)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.adapters.blob_archive import BlobArchive
from shared.config import Settings, setting_names
from shared.kernel.errors import ConfigError
from tests.integration.endpoints import azurite_blob_connection

pytestmark = pytest.mark.integration


def settings(**fields: Any) -> Settings:
    """Real settings (dev auth so they validate), with `fields` given by field name."""
    names = setting_names()
    values = {names[name]: value for name, value in fields.items() if value is not None}
    return Settings(PSC_AUTH_MODE="dev", PSC_DEV_JWT_SECRET="x" * 40, **values)


async def test_from_settings_uses_azurite_and_creates_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    monkeypatch.delenv("WEBSITE_SITE_NAME", raising=False)
    container = f"it-{uuid.uuid4().hex[:12]}"
    archive = BlobArchive.from_settings(
        settings(archive_container=container, archive_connection_string=azurite_blob_connection())
    )
    try:
        url = await archive.put("exports/a.json", b"{}", "application/json")
        assert url.endswith(f"/{container}/exports/a.json")
        assert await archive.list() == ["exports/a.json"]
    finally:
        await archive.close()


def test_a_production_storage_connection_string_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    monkeypatch.delenv("WEBSITE_SITE_NAME", raising=False)
    production = (
        "DefaultEndpointsProtocol=https;AccountName=pscprod;AccountKey=abc;EndpointSuffix=core.windows.net"
    )

    with pytest.raises(ConfigError, match="Azurite"):
        BlobArchive.from_settings(settings(archive_connection_string=production))


def test_without_an_account_url_the_setting_is_named() -> None:
    with pytest.raises(ConfigError, match="ARCHIVE__blobServiceUri"):
        BlobArchive.from_settings(settings())


async def test_transcripts_go_to_a_container_of_their_own_beside_the_exports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Transcripts are PHI: the runtime writes them to TRANSCRIPTS_CONTAINER, never to the exports'
    ARCHIVE_CONTAINER, which a KPI reader may be granted."""
    from shared.runtime import build_runtime

    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    monkeypatch.delenv("WEBSITE_SITE_NAME", raising=False)
    suffix = uuid.uuid4().hex[:12]
    rt = await build_runtime(
        settings(
            archive="blob",
            archive_container=f"exp-{suffix}",
            transcripts_container=f"tr-{suffix}",
            archive_connection_string=azurite_blob_connection(),
        )
    )
    try:
        url = await rt.transcripts.put("c-1.json", b"{}", "application/json")
        assert url.endswith(f"/tr-{suffix}/c-1.json")
        assert await rt.archive.list() == []
    finally:
        await rt.close()
