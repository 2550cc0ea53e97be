"""Secrets in the embedded default: one SQLite file of their own (`secrets.sqlite3` under
PSC_DATA_DIR), plain text, the file made readable by its owner only. Dev only: Azure keeps them in
Key Vault (shared/adapters/keyvault_secrets.py). Kept apart from the document store so nothing
that reads or exports documents can ever see them."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

from shared.adapters.sqlite_file import SqliteFile
from shared.kernel.secrets import check_name

_SCHEMA = ("CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",)


class EmbeddedSecrets:
    def __init__(self, path: Path, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        self._path = Path(path)
        self._file = SqliteFile(
            self._path, label="embedded secrets", schema=_SCHEMA, schema_version=1, busy_timeout=busy_timeout
        )

    async def put(self, name: str, value: str) -> None:
        check_name(name)
        await self._file.write(
            lambda conn: conn.execute(
                "INSERT INTO secrets (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
        )
        with contextlib.suppress(OSError):
            os.chmod(self._path, 0o600)

    async def get(self, name: str) -> str | None:
        check_name(name)

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            return None if row is None else str(row[0])

        return await self._file.call(read)

    async def close(self) -> None:
        await self._file.close()
