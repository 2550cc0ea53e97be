"""Embedded message bus: Azure Service Bus queue semantics on one SQLite file.

Why SQLite: the embedded default must run on a laptop with nothing installed, survive a crash of the
dev host (at-least-once delivery means nothing is lost when a process dies mid-work), and let several
processes (the dev host, a CLI, a test runner) share the same queues. SQLite in WAL mode gives durable,
serialisable transactions across processes with no server; `BEGIN IMMEDIATE` makes each receive or
settle one atomic read-modify-write, so two receivers can never lock the same message.

What matches Service Bus: peek-lock with lock tokens and lock expiry, delivery counts and
dead-lettering after `max_delivery_count` deliveries (`MaxDeliveryCountExceeded`), dead-lettering on
TTL expiry (`TTLExpiredException`), duplicate detection on `message_id` within the queue's window
(scheduled messages included), scheduled messages with cancellable sequence numbers, and the 256 KiB
message-size limit of the Standard tier (enforced on the body, so nothing that works here fails in
Azure for size).

Differences worth knowing:
- Time is whatever the injected Clock says; expiry, lock loss and dead-lettering for TTL or lock
  expiry happen lazily, when the queue is next received from or inspected, not on a server timer.
- Sequence numbers are unique across all queues of the file (still monotonic per queue).
- Scheduling a duplicate `message_id` inside the window returns the first message's sequence number,
  so a caller that retried a schedule can still cancel what it scheduled.
- Resubmitting a dead letter bypasses duplicate detection (Service Bus would apply it to the resend).
- Sessions are not implemented: `session_id` is carried, but it does not order or group delivery.
- A message is delivered by enqueue time (its scheduled time for scheduled messages), then sequence
  number; an abandoned message keeps its place at the head.
- Durability is `synchronous=NORMAL` in WAL mode: a committed send survives a process crash, not
  necessarily a power cut.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.adapters.sqlite_file import SqliteFile
from shared.errors import NotFound
from shared.ports.clock import Clock
from shared.ports.messages import (
    DeadLetteredMessage,
    MessageLockLost,
    OutgoingMessage,
    QueueDepth,
    QueueSpec,
    ReceivedMessage,
)

log = logging.getLogger(__name__)


MAX_MESSAGE_BYTES = 256 * 1024
MAX_MESSAGE_ID_LENGTH = 128
TTL_EXPIRED = "TTLExpiredException"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"

_SCHEMA_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PROPERTY_TYPES = (str, int, float, bool, type(None))

# `available_at` is the enqueue time: in the future while a message is scheduled. Times are integer
# microseconds since the Unix epoch (UTC). AUTOINCREMENT so a sequence number is never reused, even
# after the newest message is completed: a stale `cancel_scheduled` must not hit a newer message.
_SCHEMA = (
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
)


def _to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("message bus times must be timezone-aware")
    return (when - _EPOCH) // _MICROSECOND


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _span_us(span: timedelta) -> int:
    return span // _MICROSECOND


def _check_message(message: OutgoingMessage) -> str:
    if not message.message_id or len(message.message_id) > MAX_MESSAGE_ID_LENGTH:
        raise ValueError(f"message_id must be 1 to {MAX_MESSAGE_ID_LENGTH} characters")
    if not isinstance(message.body, bytes | bytearray | memoryview):
        raise TypeError("message body must be bytes")
    if len(message.body) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message body is over {MAX_MESSAGE_BYTES} bytes (the Service Bus Standard limit)")
    for key, value in message.application_properties.items():
        if not isinstance(key, str) or not isinstance(value, _PROPERTY_TYPES):
            raise TypeError(f"application property {key!r} must map a string to str, int, float or bool")
    return json.dumps(message.application_properties, separators=(",", ":"))


class SqliteMessageBus:
    """Service Bus queue semantics (send, schedule, peek-lock receive, dead letters) on one SQLite file.

    Implements `MessageBus`, `QueueReceiver` and `DeadLetterAdmin`. SQLite work runs inline, one
    complete operation per call (see `sqlite_file`); several instances (and processes) may share
    the file. The file is opened on first use; `close()` is final.
    """

    def __init__(
        self,
        path: Path,
        queues: Mapping[str, QueueSpec],
        clock: Clock,
        *,
        busy_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self._file = SqliteFile(
            path,
            label="embedded message bus",
            schema=_SCHEMA,
            schema_version=_SCHEMA_VERSION,
            busy_timeout=busy_timeout,
        )
        self._queues = dict(queues)
        self._clock = clock

    # ---- MessageBus -------------------------------------------------------------------------

    async def send(self, queue: str, message: OutgoingMessage) -> None:
        spec = self._spec(queue)
        properties = _check_message(message)
        now = _to_us(self._clock.now())
        await self._file.write(lambda conn: self._enqueue(conn, spec, message, properties, now, None))

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        spec = self._spec(queue)
        properties = _check_message(message)
        at_us = _to_us(at)
        now = _to_us(self._clock.now())
        return await self._file.write(lambda conn: self._enqueue(conn, spec, message, properties, now, at_us))

    async def cancel_scheduled(self, queue: str, sequence_number: int) -> None:
        self._spec(queue)
        now = _to_us(self._clock.now())

        def cancel(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM messages WHERE seq = ? AND queue = ? AND state = 'active' AND available_at > ?",
                (sequence_number, queue, now),
            )

        await self._file.write(cancel)

    async def ping(self) -> None:
        await self._file.call(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._file.close()

    # ---- QueueReceiver ----------------------------------------------------------------------

    async def receive(self, queue: str, max_messages: int = 1) -> list[ReceivedMessage]:
        spec = self._spec(queue)
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        now = _to_us(self._clock.now())
        return await self._file.write(lambda conn: self._receive(conn, spec, max_messages, now))

    async def complete(self, queue: str, lock_token: str) -> None:
        self._spec(queue)
        now = _to_us(self._clock.now())

        def complete(conn: sqlite3.Connection) -> None:
            row = self._locked(conn, queue, lock_token, now)
            conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))

        await self._file.write(complete)

    async def abandon(self, queue: str, lock_token: str) -> None:
        spec = self._spec(queue)
        now = _to_us(self._clock.now())

        def abandon(conn: sqlite3.Connection) -> None:
            row = self._locked(conn, queue, lock_token, now)
            # Service Bus dead-letters on the abandon that uses up the last delivery.
            if row["delivery_count"] >= spec.max_delivery_count:
                self._dead_letter_row(
                    conn, queue, row, MAX_DELIVERY_COUNT_EXCEEDED, _max_delivery_description(spec)
                )
            else:
                conn.execute(
                    "UPDATE messages SET lock_token = NULL, locked_until = NULL WHERE seq = ?", (row["seq"],)
                )

        await self._file.write(abandon)

    async def renew_lock(self, queue: str, lock_token: str) -> datetime:
        spec = self._spec(queue)
        now = _to_us(self._clock.now())
        until = now + _span_us(spec.lock_duration)

        def renew(conn: sqlite3.Connection) -> datetime:
            row = self._locked(conn, queue, lock_token, now)
            conn.execute("UPDATE messages SET locked_until = ? WHERE seq = ?", (until, row["seq"]))
            return _from_us(until)

        return await self._file.write(renew)

    async def dead_letter(
        self, queue: str, lock_token: str, reason: str, description: str | None = None
    ) -> None:
        self._spec(queue)
        now = _to_us(self._clock.now())

        def dead_letter(conn: sqlite3.Connection) -> None:
            row = self._locked(conn, queue, lock_token, now)
            self._dead_letter_row(conn, queue, row, reason, description)

        await self._file.write(dead_letter)

    # ---- DeadLetterAdmin --------------------------------------------------------------------

    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        specs = [self._spec(queue) for queue in queues]
        now = _to_us(self._clock.now())

        def depths(conn: sqlite3.Connection) -> list[QueueDepth]:
            result = []
            for spec in specs:
                self._sweep(conn, spec, now)
                active, scheduled, dead = conn.execute(
                    """
                    SELECT
                        COALESCE(SUM(state = 'active' AND available_at <= :now), 0),
                        COALESCE(SUM(state = 'active' AND available_at > :now), 0),
                        COALESCE(SUM(state = 'dead'), 0)
                    FROM messages WHERE queue = :queue
                    """,
                    {"now": now, "queue": spec.name},
                ).fetchone()
                result.append(QueueDepth(spec.name, active=active, scheduled=scheduled, dead_letter=dead))
            return result

        return await self._file.write(depths)

    async def peek_dead_letters(self, queue: str, max_messages: int = 50) -> list[DeadLetteredMessage]:
        spec = self._spec(queue)
        now = _to_us(self._clock.now())

        def peek(conn: sqlite3.Connection) -> list[DeadLetteredMessage]:
            self._sweep(conn, spec, now)
            rows = conn.execute(
                "SELECT * FROM messages WHERE queue = ? AND state = 'dead' ORDER BY seq LIMIT ?",
                (queue, max_messages),
            ).fetchall()
            return [
                DeadLetteredMessage(
                    body=bytes(row["body"]),
                    message_id=row["message_id"],
                    sequence_number=row["seq"],
                    delivery_count=row["delivery_count"],
                    enqueued_time=_from_us(row["available_at"]),
                    reason=row["dead_letter_reason"],
                    description=row["dead_letter_description"],
                    subject=row["subject"],
                    application_properties=json.loads(row["properties"]),
                    correlation_id=row["correlation_id"],
                )
                for row in rows
            ]

        return await self._file.write(peek)

    async def resubmit_dead_letter(self, queue: str, sequence_number: int) -> None:
        spec = self._spec(queue)
        now = _to_us(self._clock.now())

        def resubmit(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT * FROM messages WHERE seq = ? AND queue = ? AND state = 'dead'",
                (sequence_number, queue),
            ).fetchone()
            if row is None:
                raise NotFound(f"no dead-lettered message {sequence_number} on queue {queue}")
            new_seq = conn.execute(
                """
                INSERT INTO messages (queue, state, message_id, body, subject, properties, session_id,
                    correlation_id, content_type, available_at, expires_at)
                VALUES (?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    queue,
                    row["message_id"],
                    row["body"],
                    row["subject"],
                    row["properties"],
                    row["session_id"],
                    row["correlation_id"],
                    row["content_type"],
                    now,
                    now + _span_us(spec.default_message_ttl),
                ),
            ).lastrowid
            conn.execute("DELETE FROM messages WHERE seq = ?", (sequence_number,))
            ids = {"queue": queue, "message_id": row["message_id"], "sequence_number": new_seq}
            log.info("dead letter resubmitted", extra=ids)

        await self._file.write(resubmit)

    # ---- operations (inside a write transaction) ---------------------------

    def _enqueue(
        self,
        conn: sqlite3.Connection,
        spec: QueueSpec,
        message: OutgoingMessage,
        properties: str,
        now: int,
        at: int | None,
    ) -> int:
        window = _span_us(spec.duplicate_detection_window)
        conn.execute(
            "DELETE FROM duplicate_ids WHERE queue = ? AND first_seen <= ?", (spec.name, now - window)
        )
        seen = conn.execute(
            "SELECT seq FROM duplicate_ids WHERE queue = ? AND message_id = ?",
            (spec.name, message.message_id),
        ).fetchone()
        if seen is not None:
            log.debug(
                "duplicate message dropped", extra={"queue": spec.name, "message_id": message.message_id}
            )
            return int(seen["seq"])
        available_at = max(now, at) if at is not None else now
        seq = conn.execute(
            """
            INSERT INTO messages (queue, state, message_id, body, subject, properties, session_id,
                correlation_id, content_type, available_at, scheduled_at, expires_at)
            VALUES (?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (
                spec.name,
                message.message_id,
                bytes(message.body),
                message.subject,
                properties,
                message.session_id,
                message.correlation_id,
                message.content_type,
                available_at,
                at,
                available_at + _span_us(spec.default_message_ttl),
            ),
        ).lastrowid
        assert seq is not None
        conn.execute(
            "INSERT OR REPLACE INTO duplicate_ids (queue, message_id, first_seen, seq) VALUES (?, ?, ?, ?)",
            (spec.name, message.message_id, now, seq),
        )
        return seq

    def _receive(
        self, conn: sqlite3.Connection, spec: QueueSpec, max_messages: int, now: int
    ) -> list[ReceivedMessage]:
        self._sweep(conn, spec, now)
        locked_until = now + _span_us(spec.lock_duration)
        received: list[ReceivedMessage] = []
        while len(received) < max_messages:
            rows = conn.execute(
                """
                SELECT * FROM messages
                WHERE queue = :queue AND state = 'active' AND available_at <= :now
                    AND (locked_until IS NULL OR locked_until <= :now)
                ORDER BY available_at, seq LIMIT :limit
                """,
                {"queue": spec.name, "now": now, "limit": max_messages - len(received)},
            ).fetchall()
            if not rows:
                break
            for row in rows:
                if row["delivery_count"] >= spec.max_delivery_count:
                    self._dead_letter_row(
                        conn, spec.name, row, MAX_DELIVERY_COUNT_EXCEEDED, _max_delivery_description(spec)
                    )
                    continue
                token = str(uuid.uuid4())
                delivery_count = row["delivery_count"] + 1
                conn.execute(
                    "UPDATE messages SET delivery_count = ?, lock_token = ?, locked_until = ? WHERE seq = ?",
                    (delivery_count, token, locked_until, row["seq"]),
                )
                received.append(
                    ReceivedMessage(
                        body=bytes(row["body"]),
                        message_id=row["message_id"],
                        sequence_number=row["seq"],
                        delivery_count=delivery_count,
                        enqueued_time=_from_us(row["available_at"]),
                        lock_token=token,
                        locked_until=_from_us(locked_until),
                        subject=row["subject"],
                        application_properties=json.loads(row["properties"]),
                        session_id=row["session_id"],
                        correlation_id=row["correlation_id"],
                        content_type=row["content_type"],
                        scheduled_enqueue_time=(
                            _from_us(row["scheduled_at"]) if row["scheduled_at"] is not None else None
                        ),
                    )
                )
        return received

    def _sweep(self, conn: sqlite3.Connection, spec: QueueSpec, now: int) -> None:
        """Apply what Service Bus does on its own timers: expire messages past their TTL and
        dead-letter messages whose last allowed delivery ended in a lock expiry. A locked message
        does not expire while its lock is held."""
        expired = conn.execute(
            """
            SELECT * FROM messages
            WHERE queue = :queue AND state = 'active' AND expires_at <= :now
                AND (locked_until IS NULL OR locked_until <= :now)
            """,
            {"queue": spec.name, "now": now},
        ).fetchall()
        for row in expired:
            if spec.dead_lettering_on_expiration:
                self._dead_letter_row(
                    conn, spec.name, row, TTL_EXPIRED, "The message's time to live expired."
                )
            else:
                conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))
                log.info(
                    "expired message dropped",
                    extra={
                        "queue": spec.name,
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
            (spec.name, now, spec.max_delivery_count),
        ).fetchall()
        for row in used_up:
            self._dead_letter_row(
                conn, spec.name, row, MAX_DELIVERY_COUNT_EXCEEDED, _max_delivery_description(spec)
            )

    @staticmethod
    def _locked(conn: sqlite3.Connection, queue: str, lock_token: str, now: int) -> sqlite3.Row:
        # Only the token in SQL, so the lookup always takes the token index.
        row = conn.execute(
            "SELECT seq, message_id, delivery_count, queue, state, locked_until FROM messages "
            "WHERE lock_token = ?",
            (lock_token,),
        ).fetchone()
        if row is None or row["queue"] != queue or row["state"] != "active" or row["locked_until"] <= now:
            raise MessageLockLost(f"the lock on this message in queue {queue} is lost or was never held")
        return row

    @staticmethod
    def _dead_letter_row(
        conn: sqlite3.Connection, queue: str, row: sqlite3.Row, reason: str, description: str | None
    ) -> None:
        conn.execute(
            """
            UPDATE messages SET state = 'dead', dead_letter_reason = ?, dead_letter_description = ?,
                lock_token = NULL, locked_until = NULL
            WHERE seq = ?
            """,
            (reason, description, row["seq"]),
        )
        # The reason is a code chosen by our handlers; the description may quote data, so it stays out.
        log.warning(
            "message dead-lettered",
            extra={
                "queue": queue,
                "sequence_number": row["seq"],
                "message_id": row["message_id"],
                "outcome": reason,
                "delivery_count": row["delivery_count"],
            },
        )

    # ---- plumbing ---------------------------------------------------------------------------

    def _spec(self, queue: str) -> QueueSpec:
        try:
            return self._queues[queue]
        except KeyError:
            raise KeyError(f"unknown queue {queue!r}; add it to the queue catalogue") from None


def _max_delivery_description(spec: QueueSpec) -> str:
    return f"Message could not be consumed after {spec.max_delivery_count} delivery attempts."
