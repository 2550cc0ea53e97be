"""Embedded message bus: Azure Service Bus queue, topic and subscription semantics on one SQLite file.

Why SQLite: the embedded default must run on a laptop with nothing installed, survive a crash of the
dev host (at-least-once delivery means nothing is lost when a process dies mid-work), and let several
processes (the dev host, a CLI, a test runner) share the same queues. SQLite in WAL mode gives durable,
serialisable transactions across processes with no server; `BEGIN IMMEDIATE` makes each receive or
settle one atomic read-modify-write, so two receivers can never lock the same message, and two
processes can never hold the same session.

What matches Service Bus: peek-lock with lock tokens and lock expiry, delivery counts and
dead-lettering after `max_delivery_count` deliveries (`MaxDeliveryCountExceeded`), dead-lettering on
TTL expiry (`TTLExpiredException`), duplicate detection on `message_id` within the queue's or topic's
window (scheduled messages included), scheduled messages with cancellable sequence numbers, the
256 KB limit of the Standard tier on a whole message and on a batch (`PayloadTooLarge`, the error the
Service Bus adapter raises), all-or-nothing batches. Topics: each subscription whose subject filter
accepts a message gets its own copy (with the smaller of the topic's and subscription's TTL), with
its own locks, delivery counts and dead letters; a scheduled topic message waits at the topic until
due. Sessions: a session-enabled subscription hands each session to one receiver at a time, under a
session lock that expires unless renewed; messages come in order; a message without a session id is
dead-lettered on arrival there (`Session id is null.`, as Service Bus does).

Differences worth knowing:
- Time is whatever the injected Clock says; expiry, lock loss, dead-lettering for TTL or lock expiry
  and the release of scheduled topic messages happen lazily, when the entity is next received from
  or inspected, not on a server timer.
- Sequence numbers are unique across all entities of the file (still monotonic per entity); each
  subscription's copy of a topic message has its own (Service Bus numbers them per topic).
- Scheduling a duplicate `message_id` inside the window returns the first message's sequence number,
  so a caller that retried a schedule can still cancel what it scheduled.
- Resubmitting a dead letter bypasses duplicate detection (Service Bus would apply it to the resend).
- A session's next message is handed out only once the earlier ones are settled (see
  `sqlite_bus_sessions`); Service Bus would let one receiver take several at once.
- A message is delivered by enqueue time (its scheduled time for scheduled messages), then sequence
  number; an abandoned message keeps its place at the head.
- Durability is `synchronous=NORMAL` in WAL mode: a committed send survives a process crash, not
  necessarily a power cut.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from shared.adapters import sqlite_bus_sessions as sessions
from shared.adapters.sqlite_bus_delivery import (
    MAX_DELIVERY_COUNT_EXCEEDED,
    SCHEMA,
    SCHEMA_VERSION,
    TTL_EXPIRED,
    Content,
    dead_letter_row,
    dead_lettered,
    enqueue,
    fan_out,
    from_us,
    locked,
    max_delivery_description,
    receive,
    release_due,
    release_lock,
    span_us,
    sweep,
    to_us,
)
from shared.adapters.sqlite_bus_entities import (
    BusEntities,
    Destination,
    Receivable,
    check_batch,
    check_message,
)
from shared.adapters.sqlite_file import SqliteFile
from shared.kernel.clock import Clock
from shared.kernel.errors import NotFound
from shared.kernel.messages import (
    MAX_MESSAGE_BYTES,
    DeadLetteredMessage,
    OutgoingMessage,
    QueueDepth,
    QueueSpec,
    ReceivedMessage,
    SessionLock,
    TopicSpec,
)

__all__ = ["MAX_DELIVERY_COUNT_EXCEEDED", "MAX_MESSAGE_BYTES", "TTL_EXPIRED", "SqliteMessageBus"]

# Arrival signals, per bus file and receiving entity, for receivers in this process: a Service Bus
# receiver is handed a message as it arrives (AMQP link credit), while ours poll the file; a send
# sets its entities' events so a waiting receiver polls at once instead of at the end of its
# back-off. Keyed by the file (the app's bus and the dev host's receiver are two objects on one
# file) and bound to the loop that asked (tests run several loops). Sends from other processes and
# scheduled messages coming due are not signalled: the receivers' polling still finds them.
_ARRIVALS: dict[tuple[str, str], tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

log = logging.getLogger(__name__)


class SqliteMessageBus:
    """Service Bus semantics (send, schedule, peek-lock receive, topics, sessions, dead letters) on
    one SQLite file.

    Implements `MessageBus`, `QueueReceiver`, `SessionReceiver` and `DeadLetterAdmin`. SQLite work
    runs inline, one complete operation per call (see `sqlite_file`); several instances (and
    processes) may share the file. The file is opened on first use; `close()` is final.
    """

    def __init__(
        self,
        path: Path,
        queues: Mapping[str, QueueSpec],
        clock: Clock,
        *,
        topics: Mapping[str, TopicSpec] | None = None,
        busy_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self._file = SqliteFile(
            path,
            label="embedded message bus",
            schema=SCHEMA,
            schema_version=SCHEMA_VERSION,
            busy_timeout=busy_timeout,
        )
        self._entities = BusEntities(queues, topics or {})
        self._queues = dict(queues)
        self._topics = dict(topics or {})
        self._clock = clock
        self._key = str(Path(path).resolve())

    def arrivals(self, entity: str) -> asyncio.Event:
        """An event set whenever a bus of this process sends `entity` (a queue, or a topic's
        subscription) a message; the receiver clears it before it looks."""
        loop = asyncio.get_running_loop()
        held = _ARRIVALS.get((self._key, entity))
        if held is None or held[0] is not loop:
            held = (loop, asyncio.Event())
            _ARRIVALS[(self._key, entity)] = held
        return held[1]

    def _announce(self, destination: Destination) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for route in destination.routes:
            held = _ARRIVALS.get((self._key, route.entity))
            if held is not None and held[0] is loop:
                held[1].set()

    # ---- MessageBus -------------------------------------------------------------------------

    async def send(self, queue: str, message: OutgoingMessage) -> None:
        destination = self._entities.destination(queue)
        properties = check_message(message)
        ttl = self._ttl(queue)
        now = self._now()
        await self._file.write(
            lambda conn: enqueue(conn, destination, Content.of(message, properties), now, None, ttl)
        )
        self._announce(destination)

    async def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        destination = self._entities.destination(queue)
        properties = check_batch(messages)
        ttl = self._ttl(queue)
        now = self._now()

        def send(conn: sqlite3.Connection) -> None:
            for message, props in zip(messages, properties, strict=True):
                enqueue(conn, destination, Content.of(message, props), now, None, ttl)

        if messages:
            await self._file.write(send)
            self._announce(destination)

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        destination = self._entities.destination(queue)
        properties = check_message(message)
        at_us = to_us(at)
        ttl = self._ttl(queue)
        now = self._now()
        return await self._file.write(
            lambda conn: enqueue(conn, destination, Content.of(message, properties), now, at_us, ttl)
        )

    async def cancel_scheduled(self, queue: str, sequence_number: int) -> None:
        self._entities.destination(queue)
        now = self._now()

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
        entity = self._entities.receivable(queue)
        if entity.requires_session:
            raise ValueError(f"{queue} requires sessions: accept a session to receive from it")
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        now = self._now()

        def run(conn: sqlite3.Connection) -> list[ReceivedMessage]:
            self._release(conn, entity, now)
            return receive(conn, entity, max_messages, now)

        return await self._file.write(run)

    async def complete(self, queue: str, lock_token: str) -> None:
        self._entities.receivable(queue)
        now = self._now()

        def complete(conn: sqlite3.Connection) -> None:
            row = locked(conn, queue, lock_token, now)
            conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))

        await self._file.write(complete)

    async def abandon(self, queue: str, lock_token: str) -> None:
        entity = self._entities.receivable(queue)
        now = self._now()

        def abandon(conn: sqlite3.Connection) -> None:
            row = locked(conn, queue, lock_token, now)
            # Service Bus dead-letters on the abandon that uses up the last delivery.
            if row["delivery_count"] >= entity.max_delivery_count:
                dead_letter_row(
                    conn, queue, row, MAX_DELIVERY_COUNT_EXCEEDED, max_delivery_description(entity)
                )
            else:
                release_lock(conn, row["seq"])

        await self._file.write(abandon)

    async def renew_lock(self, queue: str, lock_token: str) -> datetime:
        entity = self._entities.receivable(queue)
        if entity.requires_session:
            # The Service Bus SDK refuses the same way.
            raise TypeError(
                "Renewing a message lock is invalid with sessions: renew the session lock instead."
            )
        now = self._now()
        until = now + span_us(entity.lock_duration)

        def renew(conn: sqlite3.Connection) -> datetime:
            row = locked(conn, queue, lock_token, now)
            conn.execute("UPDATE messages SET locked_until = ? WHERE seq = ?", (until, row["seq"]))
            return from_us(until)

        return await self._file.write(renew)

    async def dead_letter(
        self, queue: str, lock_token: str, reason: str, description: str | None = None
    ) -> None:
        self._entities.receivable(queue)
        now = self._now()

        def dead_letter(conn: sqlite3.Connection) -> None:
            row = locked(conn, queue, lock_token, now)
            dead_letter_row(conn, queue, row, reason, description)

        await self._file.write(dead_letter)

    # ---- SessionReceiver ----------------------------------------------------------------------

    async def accept_next_session(self, entity: str) -> SessionLock | None:
        receivable = self._session_entity(entity)
        now = self._now()

        def accept(conn: sqlite3.Connection) -> SessionLock | None:
            self._release(conn, receivable, now)
            return sessions.accept_next(conn, receivable, now)

        return await self._file.write(accept)

    async def receive_from_session(
        self, session: SessionLock, max_messages: int = 1
    ) -> list[ReceivedMessage]:
        receivable = self._session_entity(session.entity)
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        now = self._now()

        def run(conn: sqlite3.Connection) -> list[ReceivedMessage]:
            self._release(conn, receivable, now)
            return sessions.receive(conn, receivable, session, max_messages, now)

        return await self._file.write(run)

    async def sessions_with_messages(self, entity: str, session_ids: Sequence[str]) -> set[str]:
        """Which of `session_ids` have a message available now (due scheduled messages released
        first). The dev host asks this once per poll for the sessions it holds, instead of one
        receive (a write transaction each) per held session: with 100 sessions held per
        subscription those receives were most of the embedded bus's work."""
        receivable = self._session_entity(entity)
        now = self._now()
        wanted = list(dict.fromkeys(session_ids))
        if not wanted:
            return set()

        def run(conn: sqlite3.Connection) -> set[str]:
            self._release(conn, receivable, now)
            rows = conn.execute(
                "SELECT DISTINCT session_id FROM messages WHERE queue = ? AND state = 'active' "
                "AND available_at <= ? AND session_id IN (SELECT value FROM json_each(?))",
                (receivable.entity, now, json.dumps(wanted)),
            ).fetchall()
            return {str(row[0]) for row in rows}

        return await self._file.write(run)

    async def renew_session_lock(self, session: SessionLock) -> SessionLock:
        receivable = self._session_entity(session.entity)
        now = self._now()
        return await self._file.write(lambda conn: sessions.renew(conn, receivable, session, now))

    async def release_session(self, session: SessionLock) -> None:
        self._session_entity(session.entity)
        await self._file.write(lambda conn: sessions.release(conn, session))

    # ---- DeadLetterAdmin --------------------------------------------------------------------

    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        topics = {name for name in queues if self._entities.is_topic(name)}
        entities = {name: self._entities.receivable(name) for name in queues if name not in topics}
        now = self._now()

        def depths(conn: sqlite3.Connection) -> list[QueueDepth]:
            result = []
            for name in queues:
                entity = entities.get(name)
                if entity is None:
                    release_due(conn, self._entities.destination(name), now)
                else:
                    self._release(conn, entity, now)
                    sweep(conn, entity, now)
                active, scheduled, dead = conn.execute(
                    """
                    SELECT
                        COALESCE(SUM(state = 'active' AND available_at <= :now), 0),
                        COALESCE(SUM(state = 'active' AND available_at > :now), 0),
                        COALESCE(SUM(state = 'dead'), 0)
                    FROM messages WHERE queue = :queue
                    """,
                    {"now": now, "queue": name},
                ).fetchone()
                result.append(QueueDepth(name, active=active, scheduled=scheduled, dead_letter=dead))
            return result

        return await self._file.write(depths)

    async def peek_dead_letters(self, queue: str, max_messages: int = 50) -> list[DeadLetteredMessage]:
        entity = self._entities.receivable(queue)
        now = self._now()

        def peek(conn: sqlite3.Connection) -> list[DeadLetteredMessage]:
            self._release(conn, entity, now)
            sweep(conn, entity, now)
            rows = conn.execute(
                "SELECT * FROM messages WHERE queue = ? AND state = 'dead' ORDER BY seq LIMIT ?",
                (queue, max_messages),
            ).fetchall()
            return [dead_lettered(row) for row in rows]

        return await self._file.write(peek)

    async def resubmit_dead_letter(self, queue: str, sequence_number: int) -> None:
        entity = self._entities.receivable(queue)
        topic = self._entities.topic_of(queue)
        now = self._now()

        def resubmit(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT * FROM messages WHERE seq = ? AND queue = ? AND state = 'dead'",
                (sequence_number, queue),
            ).fetchone()
            if row is None:
                raise NotFound(f"no dead-lettered message {sequence_number} in {queue}")
            content = Content.from_row(row)
            if topic is not None:
                # Service Bus cannot send to one subscription: the copy goes through the topic.
                fan_out(conn, topic, content, now, None)
            else:
                conn.execute(
                    """
                    INSERT INTO messages (queue, state, message_id, body, subject, properties, session_id,
                        correlation_id, content_type, available_at, expires_at)
                    VALUES (?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    (
                        queue,
                        content.message_id,
                        content.body,
                        content.subject,
                        content.properties,
                        content.session_id,
                        content.correlation_id,
                        content.content_type,
                        now,
                        now + span_us(entity.time_to_live),
                    ),
                )
            conn.execute("DELETE FROM messages WHERE seq = ?", (sequence_number,))
            log.info(
                "dead letter resubmitted",
                extra={"queue": queue, "message_id": row["message_id"], "sequence_number": sequence_number},
            )

        await self._file.write(resubmit)

    # ---- plumbing ---------------------------------------------------------------------------

    def requires_session(self, entity: str) -> bool:
        """Whether receiving from this queue or subscription needs a session (`KeyError` if unknown)."""
        return self._entities.receivable(entity).requires_session

    def _now(self) -> int:
        return to_us(self._clock.now())

    def _ttl(self, destination: str) -> timedelta:
        if destination in self._topics:
            return self._topics[destination].default_message_ttl
        return self._queues[destination].default_message_ttl

    def _session_entity(self, entity: str) -> Receivable:
        receivable = self._entities.receivable(entity)
        if not receivable.requires_session:
            raise ValueError(f"{entity} does not require sessions: receive from it without one")
        return receivable

    def _release(self, conn: sqlite3.Connection, entity: Receivable, now: int) -> None:
        topic = self._entities.topic_of(entity.entity)
        if topic is not None:
            release_due(conn, topic, now)
