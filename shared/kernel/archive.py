"""Archive port: write-once storage for exports (KPI extracts, audit exports, transcripts).

Shaped after Blob Storage: a flat namespace of `/`-separated names. An archived object is never
overwritten — `put` of an existing name raises `Conflict` — so an export, once written, is what it
was. Errors: `NotFound` (get/delete of an absent name), `Conflict`, `Unavailable`.

Names are validated here, for every backend: 1 to 1024 characters, `/`-separated segments that are
non-empty and neither `.` nor `..`, no leading or trailing `/`, no backslash, no control characters.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

MAX_NAME_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METADATA_VALUE = re.compile(r"^[\x20-\x7e]*$")


def check_archive_name(name: str) -> str:
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError("an archive name has 1 to 1024 characters")
    if "\\" in name or _CONTROL.search(name):
        raise ValueError("an archive name holds no backslash or control character")
    if name.startswith("/") or name.endswith("/"):
        raise ValueError("an archive name neither starts nor ends with '/'")
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        raise ValueError("an archive name has no empty, '.' or '..' segment")
    return name


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Blob metadata rules, applied everywhere: identifier keys, printable ASCII values."""
    for key, value in metadata.items():
        if not _METADATA_KEY.match(key):
            raise ValueError(f"metadata key {key!r} is not an identifier")
        if not isinstance(value, str) or not _METADATA_VALUE.match(value):
            raise ValueError(f"metadata value of {key!r} must be printable ASCII")
    return metadata


def check_archive_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a name optionally ending with `/`."""
    if prefix:
        check_archive_name(prefix.removesuffix("/"))
    return prefix


@runtime_checkable
class Archive(Protocol):
    async def put(
        self,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store `data` under `name` once; returns the object's URL. `Conflict` if `name` exists.
        Metadata keys are identifiers (letters, digits, `_`); values are ASCII and never hold PHI."""
        ...

    async def get(self, name: str) -> bytes:
        """The stored bytes; `NotFound` if absent."""
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """Names starting with `prefix`, sorted."""
        ...

    async def exists(self, name: str) -> bool: ...

    async def delete(self, name: str) -> None:
        """Remove an object (retention housekeeping); `NotFound` if absent."""
        ...

    async def close(self) -> None: ...
