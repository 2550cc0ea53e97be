"""The archive contract: what every backend (embedded files, Azure Blob Storage) promises.

The blob backend runs against Azurite: `PSC_TEST_AZURITE_BLOB` (a connection string) if set, else a
local Azurite started from node_modules; it skips when neither works, except in CI where it fails.
Each test gets its own container, so tests never see each other's objects.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.kernel.archive import Archive
from shared.kernel.errors import Conflict, NotFound


@pytest.fixture(params=["file", "blob"])
async def archive(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Archive]:
    backend: Archive
    if request.param == "file":
        from shared.adapters.file_archive import FileArchive

        backend = FileArchive(tmp_path / "archive")
    else:
        from shared.adapters.blob_archive import BlobArchive
        from tests.integration.endpoints import azurite_blob_connection

        backend = BlobArchive(
            f"contract-{uuid.uuid4().hex[:16]}",
            connection_string=azurite_blob_connection(),
            create_container=True,
        )
    try:
        yield backend
    finally:
        await backend.close()


async def test_the_backend_implements_the_port(archive: Archive) -> None:
    assert isinstance(archive, Archive)


async def test_a_stored_object_reads_back_byte_for_byte(archive: Archive) -> None:
    data = bytes(range(256)) * 40

    url = await archive.put("kpi/2026/01/daily.csv", data, "text/csv", {"rows": "42"})

    assert url
    assert await archive.get("kpi/2026/01/daily.csv") == data
    assert await archive.exists("kpi/2026/01/daily.csv")


async def test_an_archived_object_is_never_overwritten(archive: Archive) -> None:
    await archive.put("audit/export-1.jsonl", b"first")

    with pytest.raises(Conflict):
        await archive.put("audit/export-1.jsonl", b"second")

    assert await archive.get("audit/export-1.jsonl") == b"first"


async def test_of_racing_writers_of_one_name_exactly_one_writes(archive: Archive) -> None:
    """Two deliveries of one event may archive at once: write-once must hold under the race
    (the blob service's `If-None-Match: *`; the files' hard link), not only one after another."""

    async def write(n: int) -> bytes | None:
        try:
            await archive.put("transcripts/c-1.json", f"writer {n}".encode() * 1000, "application/json")
        except Conflict:
            return None
        return f"writer {n}".encode() * 1000

    results = await asyncio.gather(*(write(n) for n in range(8)))

    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await archive.get("transcripts/c-1.json") == winners[0]
    assert await archive.list() == ["transcripts/c-1.json"]


async def test_reading_an_absent_object_is_not_found(archive: Archive) -> None:
    with pytest.raises(NotFound):
        await archive.get("nothing/here.bin")
    assert not await archive.exists("nothing/here.bin")


async def test_listing_returns_sorted_names_under_the_prefix(archive: Archive) -> None:
    for name in ("kpi/b.csv", "kpi/a.csv", "kpi/sub/c.csv", "kpis.csv", "audit/x.jsonl"):
        await archive.put(name, b"x")

    assert await archive.list("kpi/") == ["kpi/a.csv", "kpi/b.csv", "kpi/sub/c.csv"]
    assert await archive.list("kpi") == ["kpi/a.csv", "kpi/b.csv", "kpi/sub/c.csv", "kpis.csv"]
    assert await archive.list() == sorted(
        ["audit/x.jsonl", "kpi/a.csv", "kpi/b.csv", "kpi/sub/c.csv", "kpis.csv"]
    )
    assert await archive.list("missing/") == []


async def test_a_deleted_object_is_gone_and_its_name_free_again(archive: Archive) -> None:
    await archive.put("tmp/report.pdf", b"v1", "application/pdf")

    await archive.delete("tmp/report.pdf")

    assert not await archive.exists("tmp/report.pdf")
    assert await archive.list("tmp/") == []
    await archive.put("tmp/report.pdf", b"v2")
    assert await archive.get("tmp/report.pdf") == b"v2"


async def test_deleting_an_absent_object_is_not_found(archive: Archive) -> None:
    with pytest.raises(NotFound):
        await archive.delete("never/written.txt")


async def test_an_empty_object_is_allowed(archive: Archive) -> None:
    await archive.put("empty.txt", b"")

    assert await archive.get("empty.txt") == b""


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/abs.txt",
        "a/../b.txt",
        "../escape.txt",
        "a//b.txt",
        "dir/",
        "./a.txt",
        "a\\b.txt",
        "x\ny",
        "a" * 1025,
    ],
)
async def test_unsafe_names_are_refused_before_anything_is_written(archive: Archive, name: str) -> None:
    with pytest.raises(ValueError, match="archive name"):
        await archive.put(name, b"x")
    with pytest.raises(ValueError, match="archive name"):
        await archive.get(name)
    assert await archive.list() == []


async def test_metadata_must_be_identifier_keys_with_ascii_values(archive: Archive) -> None:
    with pytest.raises(ValueError, match="metadata"):
        await archive.put("m.txt", b"x", metadata={"not valid": "v"})
    with pytest.raises(ValueError, match="metadata"):
        await archive.put("m.txt", b"x", metadata={"k": "caf\u00e9"})
    assert not await archive.exists("m.txt")
