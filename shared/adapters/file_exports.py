"""Embedded exports: files under a folder (`PSC_DATA_DIR/exports`), laid out as the blob container
is, so Power BI Desktop's Folder connector reads them as it reads the container."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import tempfile
from pathlib import Path

from shared.kernel.archive import check_archive_name, check_archive_prefix
from shared.kernel.errors import NotFound


class FileExports:
    """Implements `shared.kernel.exports.Exports` on the local filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_archive_name(name).split("/"))

    async def write(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(name)
        await asyncio.to_thread(self._replace, path, data)
        return path.resolve().as_uri()

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".write-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)  # atomic: a reader sees the old file or the new one
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    async def read(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("No export with this name.") from None

    async def list(self, prefix: str = "") -> list[str]:
        check_archive_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[str]:
        if not self.root.is_dir():
            return []
        names = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".write-")
        )
        return sorted(name for name in names if name.startswith(prefix))

    async def close(self) -> None:
        return None
