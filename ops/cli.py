"""`python -m ops`: queue and subscription depths and dead-letter handling, on the embedded bus or
Service Bus.

    python -m ops queues
    python -m ops deadletters list ENTITY
    python -m ops deadletters peek ENTITY [--max N] [--show-body]
    python -m ops deadletters resubmit ENTITY SEQ [SEQ ...] | --all
    python -m ops kpis rebuild --from DAY --to DAY
    python -m ops callbacks [--max N]
    python -m ops export --from DAY --to DAY   (the Power BI export: ops/export.py)

ENTITY is a queue name or a topic subscription as `<topic>/subscriptions/<subscription>` (e.g.
`events/subscriptions/reminders`); `queues` lists them all. A subscription's dead letter is
resubmitted through its topic (Service Bus cannot send to one subscription), so other subscriptions
that accept it see its message id again and ignore it.

`callbacks` lists bot callbacks given up on (shared/callbacks: retried for an hour, or refused at
once): when, the conversation, the callback's webhook-id and type, the reason, the HTTP status and
the attempts; never the body (it may hold a message's text). They live in the store, beside each
conversation, not on the bus.

The bus comes from the settings (`PSC_BUS`, `PSC_DATA_DIR` or the Service Bus namespace), read as the
dev host reads them: the environment first, then `local.settings.json` (or the committed sample, or
`--settings FILE`), so on a laptop `python -m ops queues` sees the dev host's own data. Message
bodies may hold PHI: they are printed only with `--show-body`, and then with a warning.

On Service Bus the signed-in identity (`az login`, or the environment's credential) needs the
"Azure Service Bus Data Owner" role on the namespace: queue depths are a management call (the Manage
right), which the data Sender and Receiver roles do not carry. Bicep grants it to `opsPrincipalId`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from devhost.errors import StartError
from shared.kernel.errors import AccessDenied, ConfigError, PscError
from shared.kernel.messages import DeadLetterAdmin, DeadLetteredMessage, QueueSpec, TopicSpec

# Upper bound of one `resubmit --all` on a backend without a single-scan resubmission.
RESUBMIT_ALL_LIMIT = 10_000
OPS_ROLE = "Azure Service Bus Data Owner"
EXIT_DENIED = 3

AdminFactory = Callable[[], AbstractAsyncContextManager[DeadLetterAdmin]]
StoreFactory = Callable[[], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def _admin_from_settings(queues: Mapping[str, QueueSpec], topics: Mapping[str, TopicSpec]) -> Any:
    from shared.config import load_settings

    settings = load_settings()
    bus: Any
    if settings.bus == "servicebus":
        from shared.adapters.servicebus_bus import ServiceBusMessageBus

        bus = ServiceBusMessageBus.from_settings(settings, queues, topics)
    else:
        from shared.adapters.sqlite_bus import SqliteMessageBus
        from shared.kernel.clock import SystemClock

        bus = SqliteMessageBus(settings.data_dir / "bus.sqlite3", queues, SystemClock(), topics=topics)
    try:
        yield bus
    finally:
        await bus.close()


@asynccontextmanager
async def _store_from_settings() -> Any:
    from shared.config import load_settings
    from shared.kernel.catalog import CONTAINERS

    settings = load_settings()
    store: Any
    if settings.store == "cosmos":
        from shared.adapters.cosmos_documents import CosmosDocumentStore

        store = CosmosDocumentStore.from_settings(settings, CONTAINERS)
    else:
        from shared.adapters.sqlite_documents import SqliteDocumentStore
        from shared.kernel.clock import SystemClock

        store = SqliteDocumentStore(settings.data_dir / "store.sqlite3", CONTAINERS, SystemClock())
    try:
        yield store
    finally:
        await store.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops", description="Patient Service Center operations.")
    parser.add_argument(
        "--settings",
        default=None,
        metavar="FILE",
        help="settings file (default local.settings.json, else the sample); the environment wins",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "queues", help="active, scheduled and dead-lettered counts of every queue, topic and subscription"
    )

    from ops import kpis

    kpis.add_parser(commands)
    callbacks = commands.add_parser("callbacks", help="bot callbacks given up on (dead letters in the store)")
    callbacks.add_argument("--max", type=int, default=100, help="at most N (default 100)")

    dead = commands.add_parser("deadletters", help="inspect and resubmit dead-lettered messages")
    actions = dead.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per dead-lettered message")
    listing.add_argument("queue", metavar="ENTITY", help="a queue, or TOPIC/subscriptions/SUBSCRIPTION")
    listing.add_argument("--max", type=int, default=100, help="at most N messages (default 100)")

    peek = actions.add_parser("peek", help="dead-lettered messages in detail (no bodies by default)")
    peek.add_argument("queue", metavar="ENTITY", help="a queue, or TOPIC/subscriptions/SUBSCRIPTION")
    peek.add_argument("--max", type=int, default=20, help="at most N messages (default 20)")
    peek.add_argument(
        "--show-body", action="store_true", help="also print bodies and properties: they may hold PHI"
    )

    resubmit = actions.add_parser(
        "resubmit", help="send dead-lettered messages back to their queue (a subscription's: to its topic)"
    )
    resubmit.add_argument("queue", metavar="ENTITY", help="a queue, or TOPIC/subscriptions/SUBSCRIPTION")
    resubmit.add_argument("sequence_numbers", nargs="*", type=int, metavar="SEQ")
    resubmit.add_argument("--all", action="store_true", help="every dead-lettered message of the entity")

    from ops import export

    export.add_parser(commands)
    return parser


def _load_local_settings(settings_file: str | None) -> None:
    """As the dev host does: values from the settings file fill what the environment lacks."""
    from devhost.config_files import apply_to_environment, find_settings_file, read_local_settings

    root = Path(__file__).resolve().parents[1]
    explicit = Path(settings_file) if settings_file else None
    apply_to_environment(read_local_settings(find_settings_file(explicit, root)).values)


def main(
    argv: Sequence[str] | None = None,
    *,
    queues: Mapping[str, QueueSpec] | None = None,
    topics: Mapping[str, TopicSpec] | None = None,
    admin: AdminFactory | None = None,
    store: StoreFactory | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command; returns the exit status (0 ok, 1 some operation failed, 2 bad usage/config,
    3 the identity lacks a role)."""
    if queues is None:
        from shared.kernel.catalog import QUEUES, TOPICS

        queues, topics = QUEUES, TOPICS if topics is None else topics
    topics = topics or {}
    args = build_parser().parse_args(argv)
    stdout, stderr = out or sys.stdout, err or sys.stderr
    entities = _entities(queues, topics)
    if args.command == "deadletters" and args.queue not in entities:
        known = ", ".join(sorted(entities)) or "none"
        print(f"unknown queue or subscription {args.queue!r} (catalogue: {known})", file=stderr)
        return 2
    if (
        args.command == "deadletters"
        and args.action == "resubmit"
        and args.all == bool(args.sequence_numbers)
    ):
        print("give either sequence numbers or --all", file=stderr)
        return 2
    try:
        if admin is None and (store is None or args.command != "callbacks"):
            _load_local_settings(args.settings)
    except StartError as exc:
        print(f"configuration error: {exc}", file=stderr)
        return 2
    if args.command == "kpis":
        from ops import kpis

        try:
            return kpis.run(args, stdout, stderr)
        except (ConfigError, ValueError) as exc:
            print(f"error: {exc}", file=stderr)
            return 2
    factory = admin or (lambda: _admin_from_settings(queues, topics))
    try:
        if args.command == "callbacks":
            return asyncio.run(_callbacks(store or _store_from_settings, args.max, stdout))
        if args.command == "export":
            from ops import export

            return export.run(args, stdout, stderr)
        return asyncio.run(_run(args, queues, topics, factory, stdout, stderr))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=stderr)
        return 2
    except AccessDenied as exc:
        scope = f"namespace {exc.resource}" if exc.resource else "the Service Bus namespace"
        print(
            f"error: {exc.detail} This identity lacks the {exc.right} right on {scope}.\n"
            f'Grant it the "{OPS_ROLE}" role on {scope}: deploy with opsPrincipalId set to its object id,'
            f' or az role assignment create --role "{OPS_ROLE}" --assignee <object-id>'
            " --scope <namespace resource id>. Role assignments take a few minutes to apply.",
            file=stderr,
        )
        return EXIT_DENIED
    except PscError as exc:
        print(f"error: {exc.detail}", file=stderr)
        return 1


def _entities(queues: Mapping[str, QueueSpec], topics: Mapping[str, TopicSpec]) -> list[str]:
    """Queues, then each topic's subscriptions: what dead letters can be listed for."""
    return [*queues, *(entity for topic in topics.values() for entity in topic.entities())]


async def _run(
    args: argparse.Namespace,
    queues: Mapping[str, QueueSpec],
    topics: Mapping[str, TopicSpec],
    factory: AdminFactory,
    out: TextIO,
    err: TextIO,
) -> int:
    async with factory() as admin:
        if args.command == "queues":
            return await _queues(admin, queues, topics, out)
        commands: dict[str, Callable[[], Awaitable[int]]] = {
            "list": lambda: _list(admin, args.queue, args.max, out),
            "peek": lambda: _peek(admin, args.queue, args.max, args.show_body, out, err),
            "resubmit": lambda: _resubmit(admin, args.queue, args.sequence_numbers, args.all, out, err),
        }
        return await commands[args.action]()


async def _callbacks(store: StoreFactory, limit: int, out: TextIO) -> int:
    from shared.callbacks.api import dead_letters

    async with store() as documents:
        letters = await dead_letters(documents, max_items=limit)
    if not letters:
        print("no bot callbacks dead-lettered", file=out)
        return 0
    print("DEAD-LETTERED\tCONVERSATION\tWEBHOOK-ID\tTYPE\tREASON\tSTATUS\tATTEMPTS", file=out)
    for d in letters:
        status = d.status if d.status is not None else "-"
        print(
            f"{d.dead_lettered_at.isoformat()}\t{d.conversation_id}\t{d.callback_id}\t{d.callback_type}"
            f"\t{d.reason}\t{status}\t{d.attempts}",
            file=out,
        )
    if len(letters) == limit:
        print(f"(first {limit} shown; use --max for more)", file=out)
    return 0


async def _queues(
    admin: DeadLetterAdmin, queues: Mapping[str, QueueSpec], topics: Mapping[str, TopicSpec], out: TextIO
) -> int:
    # A topic holds only its scheduled messages; each subscription has its own active and dead letters.
    entities = [*queues, *(name for topic in topics.values() for name in (topic.name, *topic.entities()))]
    if not entities:
        print("no queues or topics in the catalogue", file=out)
        return 0
    depths = await admin.depths(entities)
    width = max(len("ENTITY"), *(len(d.queue) for d in depths))
    print(f"{'ENTITY':<{width}}  {'ACTIVE':>8}  {'SCHEDULED':>9}  {'DEAD-LETTER':>11}", file=out)
    for d in depths:
        print(f"{d.queue:<{width}}  {d.active:>8}  {d.scheduled:>9}  {d.dead_letter:>11}", file=out)
    return 0


async def _list(admin: DeadLetterAdmin, queue: str, limit: int, out: TextIO) -> int:
    messages = await admin.peek_dead_letters(queue, max_messages=limit)
    if not messages:
        print(f"no dead-lettered messages on {queue}", file=out)
        return 0
    print("SEQ\tMESSAGE-ID\tREASON\tENQUEUED", file=out)
    for m in messages:
        print(f"{m.sequence_number}\t{m.message_id}\t{m.reason}\t{m.enqueued_time.isoformat()}", file=out)
    if len(messages) == limit:
        print(f"(first {limit} shown; use --max for more)", file=out)
    return 0


async def _peek(
    admin: DeadLetterAdmin, queue: str, limit: int, show_body: bool, out: TextIO, err: TextIO
) -> int:
    messages = await admin.peek_dead_letters(queue, max_messages=limit)
    if show_body:
        print(
            "WARNING: message bodies and properties may contain patient data (PHI)."
            " Do not copy them into tickets, chats or logs.",
            file=err,
        )
    if not messages:
        print(f"no dead-lettered messages on {queue}", file=out)
    for m in messages:
        _print_detail(m, show_body, out)
    return 0


def _print_detail(m: DeadLetteredMessage, show_body: bool, out: TextIO) -> None:
    lines = [
        f"sequence number : {m.sequence_number}",
        f"message id      : {m.message_id}",
        f"reason          : {m.reason}",
        f"description     : {m.description or '-'}",
        f"delivery count  : {m.delivery_count}",
        f"enqueued        : {m.enqueued_time.isoformat()}",
        f"subject         : {m.subject or '-'}",
        f"correlation id  : {m.correlation_id or '-'}",
    ]
    if show_body:
        lines.append(f"properties      : {m.application_properties}")
        lines.append(f"body            : {m.body.decode('utf-8', errors='replace')}")
    print("\n".join(lines) + "\n", file=out)


async def _resubmit(
    admin: DeadLetterAdmin,
    queue: str,
    sequence_numbers: list[int],
    everything: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    # Service Bus resubmits many messages in one scan of the dead-letter queue; use it when offered.
    batch = getattr(admin, "resubmit_dead_letters", None)
    if everything and batch is not None:
        done = await batch(queue, None)
        print(f"resubmitted {len(done)} message(s) from {queue}", file=out)
        return 0
    if everything:
        sequence_numbers = [
            m.sequence_number for m in await admin.peek_dead_letters(queue, max_messages=RESUBMIT_ALL_LIMIT)
        ]
    failures = 0
    for sequence in sequence_numbers:
        try:
            await admin.resubmit_dead_letter(queue, sequence)
        except PscError as exc:
            failures += 1
            print(f"{sequence}: not resubmitted: {exc.detail}", file=err)
        else:
            print(f"{sequence}: resubmitted", file=out)
    if everything and len(sequence_numbers) == RESUBMIT_ALL_LIMIT:
        print(f"stopped after {RESUBMIT_ALL_LIMIT} messages: run again for the rest", file=out)
    return 1 if failures else 0
