"""`python -m ops callbacks`: bot callbacks given up on, read from the store, never their bodies."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops.cli import main
from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.callbacks.api import CallbackDeadLetter
from shared.callbacks.schedule import DeadLetter
from shared.kernel.catalog import CONTAINERS, CONVERSATIONS
from shared.kernel.clock import SystemClock
from shared.kernel.stored import Stored

CID = "c-0123456789abcdef0123456789abcdef"


def open_store(path: Path) -> SqliteDocumentStore:
    return SqliteDocumentStore(path, CONTAINERS, SystemClock())


async def _write(path: Path) -> None:
    store = open_store(path)
    try:
        letter = DeadLetter(
            id=f"{CID}:3-1",
            type="message",
            reason="server-error",
            status=503,
            attempts=7,
            first_failure_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            dead_lettered_at=datetime(2026, 1, 5, 10, 1, tzinfo=UTC),
        )
        await Stored(store, CONVERSATIONS, CallbackDeadLetter).upsert(CallbackDeadLetter.of(CID, letter))
    finally:
        await store.close()


def run(path: Path, *argv: str) -> tuple[int, str]:
    @asynccontextmanager
    async def store() -> AsyncIterator[Any]:
        opened = open_store(path)
        try:
            yield opened
        finally:
            await opened.close()

    out = io.StringIO()
    status = main(["callbacks", *argv], queues={}, topics={}, store=store, out=out, err=io.StringIO())
    return status, out.getvalue()


def test_callbacks_lists_each_dead_letter_with_its_reason_status_and_attempts(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    assert run(path) == (0, "no bot callbacks dead-lettered\n")
    asyncio.run(_write(path))
    status, out = run(path)
    assert status == 0
    header, line = out.splitlines()
    assert header.split("\t") == [
        "DEAD-LETTERED",
        "CONVERSATION",
        "WEBHOOK-ID",
        "TYPE",
        "REASON",
        "STATUS",
        "ATTEMPTS",
    ]
    assert line.split("\t") == [
        "2026-01-05T10:01:00+00:00",
        CID,
        f"{CID}:3-1",
        "message",
        "server-error",
        "503",
        "7",
    ]
