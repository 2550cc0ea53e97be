"""How messages move through the embedded bus's one table: enqueue with duplicate detection, a
topic's fan-out to its subscriptions, release of scheduled topic messages, peek-lock receive,
expiry sweeps and dead-lettering. Every function runs inside the caller's write transaction.

Rows: `queue` holds the entity (a queue, a subscription path, or a topic for a scheduled topic
message that has not come due). `available_at` is the enqueue time, in the future while a message is
scheduled. Times are integer microseconds since the Unix epoch (UTC). `seq` is AUTOINCREMENT so a
sequence number is never reused: a stale `cancel_scheduled` must not hit a newer message.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.adapters.sqlite_bus_entities import Destination, Receivable
from shared.kernel.messages import (
    DeadLetteredMessage,
    MessageLockLost,
    OutgoingMessage,
    ReceivedMessage,
    SessionLockLost,
)

log = logging.getLogger("shared.adapters.sqlite_bus")

TTL_EXPIRED = "TTLExpiredException"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
# What Service Bus writes on a message without a session id that reaches a session-enabled subscription.
SESSION_ID_IS_NULL = "Session id is null."
SESSION_ID_IS_NULL_DESCRIPTION = (
    "Session enabled entity doesn't allow a message whose session identifier is null."
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

SCHEMA_VERSION = 2
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'dead')),
        message_id TEXT NOT NULL,
        body BLOB NOT NULL,
        subject TEXT,
        properties TEXT NOT NULL,
        session_id TEXT,
        correlation_id TEXT,
        content_type TEXT,
        available_at INTEGER NOT NULL,
        scheduled_at INTEGER,
        expires_at INTEGER NOT NULL,
        delivery_count INTEGER NOT NULL DEFAULT 0,
        lock_token TEXT,
        locked_until INTEGER,
        dead_letter_reason TEXT,
        dead_letter_description TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, state, available_at, seq)",
    "CREATE INDEX IF NOT EXISTS messages_expiry ON messages (queue, expires_at) WHERE state = 'active'",
    "CREATE INDEX IF NOT EXISTS messages_locked ON messages (queue, locked_until) "
    "WHERE locked_until IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_lock_token ON messages (lock_token) WHERE lock_token IS NOT NULL",
    """
    CREATE TABLE IF NOT EXISTS duplicate_ids (
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (queue, message_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS duplicate_ids_age ON duplicate_ids (queue, first_seen)",
    # Version 2: topics, subscriptions and sessions. `session_lock` is the session lock a message was
    # received under; its lock lives and dies with that session's.
    (2, "ALTER TABLE messages ADD COLUMN session_lock TEXT"),
    """
    CREATE TABLE IF NOT EXISTS sessions (
        entity TEXT NOT NULL,
        session_id TEXT NOT NULL,
        lock_token TEXT NOT NULL,
        locked_until INTEGER NOT NULL,
        PRIMARY KEY (entity, session_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS messages_session ON messages (queue, session_id, state, available_at, seq) "
    "WHERE session_id IS NOT NULL",
)


def to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("message bus times must be timezone-aware")
    return (when - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def span_us(span: timedelta) -> int:
    return span // _MICROSECOND


@dataclass(frozen=True)
class Content:
    """What a message carries, whether it comes from a sender or from a stored row."""

    message_id: str
    body: bytes
    subject: str | None
    properties: str  # JSON
    session_id: str | None
    correlation_id: str | None
    content_type: str | None

    @staticmethod
    def of(message: OutgoingMessage, properties: str) -> Content:
        return Content(
            message.message_id,
            bytes(message.body),
            message.subject,
            properties,
            message.session_id,
            message.correlation_id,
            message.content_type,
        )

    @staticmethod
    def from_row(row: sqlite3.Row) -> Content:
        return Content(
            row["message_id"],
            bytes(row["body"]),
            row["subject"],
            row["properties"],
            row["session_id"],
            row["correlation_id"],
            row["content_type"],
        )


def _insert(
    conn: sqlite3.Connection,
    entity: str,
    content: Content,
    available_at: int,
    scheduled_at: int | None,
    expires_at: int,
) -> int:
    seq = conn.execute(
        """
        INSERT INTO messages (queue, state, message_id, body, subject, properties, session_id,
            correlation_id, content_type, available_at, scheduled_at, expires_at)
        VALUES (?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            entity,
            content.message_id,
            content.body,
            content.subject,
            content.properties,
            content.session_id,
            content.correlation_id,
            content.content_type,
            available_at,
            scheduled_at,
            expires_at,
        ),
    ).lastrowid
    assert seq is not None
    return seq


def enqueue(
    conn: sqlite3.Connection,
    destination: Destination,
    content: Content,
    now: int,
    at: int | None,
    ttl: timedelta,
) -> int:
    """Send or schedule one message with duplicate detection; returns its sequence number (0 for a
    topic send, which leaves no row of its own, only the subscriptions' copies)."""
    window = span_us(destination.duplicate_detection_window)
    conn.execute(
        "DELETE FROM duplicate_ids WHERE queue = ? AND first_seen <= ?", (destination.name, now - window)
    )
    seen = conn.execute(
        "SELECT seq FROM duplicate_ids WHERE queue = ? AND message_id = ?",
        (destination.name, content.message_id),
    ).fetchone()
    if seen is not None:
        log.debug(
            "duplicate message dropped", extra={"queue": destination.name, "message_id": content.message_id}
        )
        return int(seen["seq"])
    available_at = max(now, at) if at is not None else now
    if not destination.is_topic:
        seq = _insert(conn, destination.name, content, available_at, at, available_at + span_us(ttl))
    elif at is not None:
        # A scheduled topic message waits at the topic and reaches the subscriptions when due.
        seq = _insert(conn, destination.name, content, available_at, at, available_at + span_us(ttl))
        if available_at <= now:
            release_due(conn, destination, now)
    else:
        seq = 0
        fan_out(conn, destination, content, now, None)
    conn.execute(
        "INSERT OR REPLACE INTO duplicate_ids (queue, message_id, first_seen, seq) VALUES (?, ?, ?, ?)",
        (destination.name, content.message_id, now, seq),
    )
    return seq


def fan_out(
    conn: sqlite3.Connection,
    topic: Destination,
    content: Content,
    available_at: int,
    scheduled_at: int | None,
) -> None:
    """A copy for each subscription whose filter accepts the subject."""
    for route in topic.routes:
        if not route.accepts(content.subject):
            continue
        seq = _insert(
            conn,
            route.entity,
            content,
            available_at,
            scheduled_at,
            available_at + span_us(route.time_to_live),
        )
        if route.requires_session and content.session_id is None:
            row = conn.execute("SELECT * FROM messages WHERE seq = ?", (seq,)).fetchone()
            dead_letter_row(conn, route.entity, row, SESSION_ID_IS_NULL, SESSION_ID_IS_NULL_DESCRIPTION)


def release_due(conn: sqlite3.Connection, topic: Destination, now: int) -> None:
    """Hand scheduled topic messages that have come due to the subscriptions (Service Bus does this
    on its own timer; we do it whenever the topic or one of its subscriptions is used)."""
    rows = conn.execute(
        "SELECT * FROM messages WHERE queue = ? AND state = 'active' AND available_at <= ? "
        "ORDER BY available_at, seq",
        (topic.name, now),
    ).fetchall()
    for row in rows:
        fan_out(conn, topic, Content.from_row(row), row["available_at"], row["scheduled_at"])
        conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))


def lock_row(
    conn: sqlite3.Connection, row: sqlite3.Row, locked_until: int, session_lock: str | None = None
) -> ReceivedMessage:
    """Count a delivery and lock the row; returns it as received."""
    token = str(uuid.uuid4())
    delivery_count = row["delivery_count"] + 1
    conn.execute(
        "UPDATE messages SET delivery_count = ?, lock_token = ?, locked_until = ?, session_lock = ? "
        "WHERE seq = ?",
        (delivery_count, token, locked_until, session_lock, row["seq"]),
    )
    return ReceivedMessage(
        body=bytes(row["body"]),
        message_id=row["message_id"],
        sequence_number=row["seq"],
        delivery_count=delivery_count,
        enqueued_time=from_us(row["available_at"]),
        lock_token=token,
        locked_until=from_us(locked_until),
        subject=row["subject"],
        application_properties=json.loads(row["properties"]),
        session_id=row["session_id"],
        correlation_id=row["correlation_id"],
        content_type=row["content_type"],
        scheduled_enqueue_time=from_us(row["scheduled_at"]) if row["scheduled_at"] is not None else None,
    )


def receive(
    conn: sqlite3.Connection, entity: Receivable, max_messages: int, now: int
) -> list[ReceivedMessage]:
    """Peek-lock receive from an entity without sessions."""
    sweep(conn, entity, now)
    locked_until = now + span_us(entity.lock_duration)
    received: list[ReceivedMessage] = []
    while len(received) < max_messages:
        rows = conn.execute(
            """
            SELECT * FROM messages
            WHERE queue = :queue AND state = 'active' AND available_at <= :now
                AND (locked_until IS NULL OR locked_until <= :now)
            ORDER BY available_at, seq LIMIT :limit
            """,
            {"queue": entity.entity, "now": now, "limit": max_messages - len(received)},
        ).fetchall()
        if not rows:
            break
        for row in rows:
            if row["delivery_count"] >= entity.max_delivery_count:
                dead_letter_row(
                    conn, entity.entity, row, MAX_DELIVERY_COUNT_EXCEEDED, max_delivery_description(entity)
                )
                continue
            received.append(lock_row(conn, row, locked_until))
    return received


def sweep(conn: sqlite3.Connection, entity: Receivable, now: int) -> None:
    """Apply what Service Bus does on its own timers: expire messages past their TTL and dead-letter
    messages whose last allowed delivery ended in a lock expiry. A locked message does not expire
    while its lock is held."""
    expired = conn.execute(
        """
        SELECT * FROM messages
        WHERE queue = :queue AND state = 'active' AND expires_at <= :now
            AND (locked_until IS NULL OR locked_until <= :now)
        """,
        {"queue": entity.entity, "now": now},
    ).fetchall()
    for row in expired:
        if entity.dead_lettering_on_expiration:
            dead_letter_row(conn, entity.entity, row, TTL_EXPIRED, "The message's time to live expired.")
        else:
            conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))
            log.info(
                "expired message dropped",
                extra={
                    "queue": entity.entity,
                    "sequence_number": row["seq"],
                    "message_id": row["message_id"],
                },
            )
    used_up = conn.execute(
        """
        SELECT * FROM messages
        WHERE queue = ? AND state = 'active' AND locked_until IS NOT NULL AND locked_until <= ?
            AND delivery_count >= ?
        """,
        (entity.entity, now, entity.max_delivery_count),
    ).fetchall()
    for row in used_up:
        dead_letter_row(
            conn, entity.entity, row, MAX_DELIVERY_COUNT_EXCEEDED, max_delivery_description(entity)
        )


def locked(conn: sqlite3.Connection, entity: str, lock_token: str, now: int) -> sqlite3.Row:
    """The row this lock token holds, or `MessageLockLost` (`SessionLockLost` when the message was
    received under a session lock that is gone)."""
    # Only the token in SQL, so the lookup always takes the token index.
    row = conn.execute(
        "SELECT seq, message_id, delivery_count, queue, state, locked_until, session_id, session_lock "
        "FROM messages WHERE lock_token = ?",
        (lock_token,),
    ).fetchone()
    if row is None or row["queue"] != entity or row["state"] != "active":
        raise MessageLockLost(f"the lock on this message in {entity} is lost or was never held")
    if row["session_lock"] is not None:
        session = conn.execute(
            "SELECT lock_token, locked_until FROM sessions WHERE entity = ? AND session_id = ?",
            (entity, row["session_id"]),
        ).fetchone()
        if session is None or session["lock_token"] != row["session_lock"] or session["locked_until"] <= now:
            raise SessionLockLost(f"the session lock of this message in {entity} is lost")
    elif row["locked_until"] <= now:
        raise MessageLockLost(f"the lock on this message in {entity} is lost or was never held")
    return row


def release_lock(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute(
        "UPDATE messages SET lock_token = NULL, locked_until = NULL, session_lock = NULL WHERE seq = ?",
        (seq,),
    )


def dead_letter_row(
    conn: sqlite3.Connection, entity: str, row: sqlite3.Row, reason: str, description: str | None
) -> None:
    conn.execute(
        """
        UPDATE messages SET state = 'dead', dead_letter_reason = ?, dead_letter_description = ?,
            lock_token = NULL, locked_until = NULL, session_lock = NULL
        WHERE seq = ?
        """,
        (reason, description, row["seq"]),
    )
    # The reason is a code chosen by our handlers; the description may quote data, so it stays out.
    log.warning(
        "message dead-lettered",
        extra={
            "queue": entity,
            "sequence_number": row["seq"],
            "message_id": row["message_id"],
            "outcome": reason,
            "delivery_count": row["delivery_count"],
        },
    )


def dead_lettered(row: sqlite3.Row) -> DeadLetteredMessage:
    return DeadLetteredMessage(
        body=bytes(row["body"]),
        message_id=row["message_id"],
        sequence_number=row["seq"],
        delivery_count=row["delivery_count"],
        enqueued_time=from_us(row["available_at"]),
        reason=row["dead_letter_reason"],
        description=row["dead_letter_description"],
        subject=row["subject"],
        application_properties=json.loads(row["properties"]),
        correlation_id=row["correlation_id"],
        session_id=row["session_id"],
    )


def max_delivery_description(entity: Receivable) -> str:
    return f"Message could not be consumed after {entity.max_delivery_count} delivery attempts."
