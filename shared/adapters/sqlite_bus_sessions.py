"""Service Bus sessions on the embedded bus: accepting the next available session, receiving its
messages in order under the session lock, renewing and releasing it. Every function runs inside the
caller's write transaction, so a session lock is taken by exactly one receiver across all processes
sharing the file.

Ordering is stricter than Service Bus's: a session's next message is handed out only once every
earlier one is settled (or its lock is gone), whatever `max_messages` says. Service Bus would hand a
second receive the next message while the first is still locked; the Functions host never asks for
it (one call per session at a time), and that is the behaviour the dev host and our consumers rely on.
"""

from __future__ import annotations

import sqlite3
import uuid

from shared.adapters.sqlite_bus_delivery import (
    MAX_DELIVERY_COUNT_EXCEEDED,
    dead_letter_row,
    from_us,
    lock_row,
    max_delivery_description,
    span_us,
    sweep,
)
from shared.adapters.sqlite_bus_entities import Receivable
from shared.kernel.messages import ReceivedMessage, SessionLock, SessionLockLost


def accept_next(conn: sqlite3.Connection, entity: Receivable, now: int) -> SessionLock | None:
    """Lock the session whose oldest available message waits longest, among those nobody holds."""
    sweep(conn, entity, now)
    row = conn.execute(
        """
        SELECT m.session_id FROM messages AS m
        WHERE m.queue = :entity AND m.state = 'active' AND m.available_at <= :now
            AND m.session_id IS NOT NULL AND (m.locked_until IS NULL OR m.locked_until <= :now)
            AND NOT EXISTS (
                SELECT 1 FROM sessions AS s
                WHERE s.entity = m.queue AND s.session_id = m.session_id AND s.locked_until > :now
            )
        ORDER BY m.available_at, m.seq LIMIT 1
        """,
        {"entity": entity.entity, "now": now},
    ).fetchone()
    if row is None:
        return None
    token = str(uuid.uuid4())
    locked_until = now + span_us(entity.lock_duration)
    conn.execute(
        "INSERT OR REPLACE INTO sessions (entity, session_id, lock_token, locked_until) VALUES (?, ?, ?, ?)",
        (entity.entity, row["session_id"], token, locked_until),
    )
    return SessionLock(entity.entity, row["session_id"], token, from_us(locked_until))


def _held(conn: sqlite3.Connection, session: SessionLock, now: int) -> sqlite3.Row:
    row = conn.execute(
        "SELECT lock_token, locked_until FROM sessions WHERE entity = ? AND session_id = ?",
        (session.entity, session.session_id),
    ).fetchone()
    if row is None or row["lock_token"] != session.lock_token or row["locked_until"] <= now:
        raise SessionLockLost(f"the lock on session {session.session_id} of {session.entity} is lost")
    return row


def receive(
    conn: sqlite3.Connection, entity: Receivable, session: SessionLock, max_messages: int, now: int
) -> list[ReceivedMessage]:
    held = _held(conn, session, now)
    sweep(conn, entity, now)
    rows = conn.execute(
        """
        SELECT * FROM messages
        WHERE queue = ? AND session_id = ? AND state = 'active' AND available_at <= ?
        ORDER BY available_at, seq
        """,
        (entity.entity, session.session_id, now),
    ).fetchall()
    received: list[ReceivedMessage] = []
    for row in rows:
        if len(received) >= max_messages:
            break
        if row["locked_until"] is not None and row["locked_until"] > now:
            break  # an earlier message is still out: nothing later until it is settled
        if row["delivery_count"] >= entity.max_delivery_count:
            dead_letter_row(
                conn, entity.entity, row, MAX_DELIVERY_COUNT_EXCEEDED, max_delivery_description(entity)
            )
            continue
        received.append(lock_row(conn, row, held["locked_until"], session.lock_token))
    return received


def renew(conn: sqlite3.Connection, entity: Receivable, session: SessionLock, now: int) -> SessionLock:
    _held(conn, session, now)
    locked_until = now + span_us(entity.lock_duration)
    conn.execute(
        "UPDATE sessions SET locked_until = ? WHERE entity = ? AND session_id = ?",
        (locked_until, session.entity, session.session_id),
    )
    # The messages out under this session keep their lock as long as the session's.
    conn.execute(
        "UPDATE messages SET locked_until = ? WHERE queue = ? AND session_id = ? AND session_lock = ?",
        (locked_until, session.entity, session.session_id, session.lock_token),
    )
    return SessionLock(session.entity, session.session_id, session.lock_token, from_us(locked_until))


def release(conn: sqlite3.Connection, session: SessionLock) -> None:
    """Close the session: its unsettled messages are free for the next acceptor (their delivery
    counts stand). Releasing a session lock that is already gone changes nothing."""
    deleted = conn.execute(
        "DELETE FROM sessions WHERE entity = ? AND session_id = ? AND lock_token = ?",
        (session.entity, session.session_id, session.lock_token),
    ).rowcount
    if deleted:
        conn.execute(
            "UPDATE messages SET lock_token = NULL, locked_until = NULL, session_lock = NULL "
            "WHERE queue = ? AND session_id = ? AND session_lock = ?",
            (session.entity, session.session_id, session.lock_token),
        )
