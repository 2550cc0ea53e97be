"""Exports port: where the Power BI feed's Parquet files go (`<data dir>/exports/` in the dev host,
the blob container `exports` in Azure).

Unlike the archive, an export file is replaced when the same day is exported again: a re-run (after
a late event, a rebuild or a fix) must leave exactly one file per table and day, never two that
Power BI would add up. A reader sees the old file or the new one, never a half-written one (the
file adapter renames into place; a blob upload commits its blocks at once). Names are checked as
archive names (`shared.kernel.archive.check_archive_name`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Exports(Protocol):
    async def write(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store `data` under `name`, replacing what was there; returns the object's URL."""
        ...

    async def read(self, name: str) -> bytes:
        """The stored bytes; `NotFound` if absent."""
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """Names starting with `prefix`, sorted."""
        ...

    async def close(self) -> None: ...
