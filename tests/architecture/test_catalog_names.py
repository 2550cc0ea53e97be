"""Container, queue, topic and subscription names live only in the catalog
(shared/kernel/catalog.py): code names them through its constants, never as strings. The scan
looks where a name is used as one — the store's and the bus's name arguments, `Stored(store,
<container>, ...)`, the catalog's dictionaries, a tuple of names, a setting's default — so a word
that merely equals a name (an API tag, a JSON field, a list id) is left alone."""

from __future__ import annotations

import ast
from pathlib import Path

from shared.kernel import catalog

ROOT = Path(__file__).resolve().parents[2]
# The code the catalog binds: the capabilities, the adapters, the triggers, the ops tools. The dev
# host plays Azure (its own machinery), benchmarks and tests build their own stores.
SCANNED = ("shared", "functions", "ops", "scripts", "function_app.py")
CATALOG = ROOT / "shared" / "kernel" / "catalog.py"

# Port methods whose first argument (or this keyword) is a container, queue, topic or entity name.
NAME_ARGUMENT = {
    "container": "name",
    "change_feed_position": "container",
    "read_changes": "container",
    "send": "entity",
    "send_batch": "entity",
    "schedule": "entity",
    "cancel_scheduled": "entity",
    "receive": "queue",
    "complete": "queue",
    "abandon": "queue",
    "renew_lock": "queue",
    "dead_letter": "queue",
    "accept_next_session": "entity",
    "peek_dead_letters": "queue",
    "resubmit_dead_letter": "queue",
    "subscription": "name",
    "subscription_entity": "topic",
}
# Constructors whose second argument is a container: (store, container, model).
CONTAINER_SECOND = {"Stored", "Aggregates"}
DICTIONARIES = {"CONTAINERS", "QUEUES", "TOPICS"}
# (`*_CONTAINER` settings name Blob containers, which are settings, not catalog entries.)
SETTING_SUFFIXES = ("_QUEUE", "_TOPIC", "_SUBSCRIPTION")


def catalog_names() -> set[str]:
    names = set(catalog.CONTAINERS) | set(catalog.QUEUES) | set(catalog.TOPICS)
    for topic in catalog.TOPICS.values():
        names |= {s.name for s in topic.subscriptions}
    return names


def _called(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _literal(node: ast.AST | None, names: set[str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
        return node.value
    return None


def named_literals(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every catalog name written as a string where a name is used as one."""
    found: list[tuple[int, str]] = []

    def check(node: ast.AST | None) -> None:
        if (name := _literal(node, names)) is not None:
            found.append((node.lineno, name))  # type: ignore[union-attr]

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            called = _called(node)
            if called in NAME_ARGUMENT:
                check(node.args[0] if node.args else None)
                check(next((k.value for k in node.keywords if k.arg == NAME_ARGUMENT[called]), None))
            if called in CONTAINER_SECOND:
                check(node.args[1] if len(node.args) > 1 else None)
                check(next((k.value for k in node.keywords if k.arg == "container"), None))
            setting = node.args[0] if node.args else None
            if (
                isinstance(setting, ast.Constant)
                and isinstance(setting.value, str)
                and setting.value.endswith(SETTING_SUFFIXES)
                and len(node.args) > 1
            ):
                check(node.args[1])
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if node.value.id in DICTIONARIES:
                check(node.slice)
        elif (
            isinstance(node, ast.Tuple | ast.List | ast.Set)
            and len(node.elts) > 1
            and all(_literal(e, names) is not None for e in node.elts)
        ):
            for element in node.elts:
                check(element)
    return sorted(found)


def _sources() -> list[Path]:
    paths: list[Path] = []
    for entry in SCANNED:
        path = ROOT / entry
        paths += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [p for p in paths if p != CATALOG]


def test_names_are_written_only_in_the_catalog() -> None:
    names = catalog_names()
    found = {
        f"{path.relative_to(ROOT)}:{line}: {name!r}"
        for path in _sources()
        for line, name in named_literals(path.read_text(), names)
    }
    assert found == set(), "use the constant from shared/kernel/catalog.py"


def test_the_scan_finds_names_written_as_strings_and_leaves_other_words_alone() -> None:
    names = {"routing", "conversations", "agents", "notification-reports", "callbacks"}
    written = """
await bus.receive("routing", max_messages=20)
await bus.complete(queue="routing", lock_token=t)
page = await store.container("agents").query(q)
spec = QUEUES["notification-reports"]
for container in ("conversations", "agents"):
    pass
codes = Stored(store, "agents", Agent)
default = _setting("CALLBACKS_SUBSCRIPTION", "callbacks", "help")
"""
    assert [line for line, _ in named_literals(written, names)] == [2, 3, 4, 5, 6, 6, 8, 9]
    words = """
api = Api(bp, tag="conversations")
body = {"agents": agents, "conversations": ids}
await move(doc, by="routing")
await bus.receive(ROUTING_QUEUE)
for container in (CONVERSATIONS, "agents-extra"):
    pass
"""
    assert named_literals(words, names) == []
