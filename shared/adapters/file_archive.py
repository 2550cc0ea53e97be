"""Embedded archive: files under a folder (`PSC_DATA_DIR/archive` by default).

Objects live under `objects/`, their content type and metadata beside them under `meta/`, so a
listing never sees the sidecars. Write-once is atomic: the data goes to a temporary file that is
then hard-linked to its name, and linking fails if the name exists.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import tempfile
from pathlib import Path

from shared.kernel.archive import check_archive_name, check_archive_prefix, check_metadata
from shared.kernel.errors import Conflict, NotFound


class FileArchive:
    """Implements `shared.kernel.archive.Archive` on the local filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._meta = self.root / "meta"

    def _path(self, name: str) -> Path:
        return self._objects.joinpath(*check_archive_name(name).split("/"))

    async def put(
        self,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> str:
        path = self._path(name)
        sidecar = self._meta.joinpath(*name.split("/")).with_name(path.name + ".json")
        check_metadata(metadata or {})
        await asyncio.to_thread(self._write_once, path, sidecar, data, content_type, metadata or {})
        return path.resolve().as_uri()

    def _write_once(
        self, path: Path, sidecar: Path, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> None:
        if path.exists() or any(parent.is_file() for parent in path.parents):
            raise Conflict("An archived object with this name exists.")
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise Conflict("An archived object with this name exists.") from None
        finally:
            os.unlink(temporary)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        sidecar.write_text(json.dumps({"contentType": content_type, "metadata": metadata}))

    async def get(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("No archived object with this name.") from None

    async def list(self, prefix: str = "") -> list[str]:
        check_archive_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[str]:
        if not self._objects.is_dir():
            return []
        names = []
        for path in self._objects.rglob("*"):
            if path.is_file() and not path.name.startswith(".put-"):
                name = path.relative_to(self._objects).as_posix()
                if name.startswith(prefix):
                    names.append(name)
        return sorted(names)

    async def exists(self, name: str) -> bool:
        return await asyncio.to_thread(self._path(name).is_file)

    async def delete(self, name: str) -> None:
        path = self._path(name)
        sidecar = self._meta.joinpath(*name.split("/")).with_name(path.name + ".json")
        try:
            await asyncio.to_thread(path.unlink)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            raise NotFound("No archived object with this name.") from None
        await asyncio.to_thread(sidecar.unlink, missing_ok=True)

    async def close(self) -> None:
        return None
