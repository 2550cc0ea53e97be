"""The architecture's rules, held by machine: the import contracts (pyproject.toml, run here and
by scripts/test.sh), module sizes, every lazily named model resolving to its home, and one retry
policy (no hand-written retry loops beside shared/kernel/retry.py), and the model contract seeing
every capability's model."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from tests.architecture.contracts import PureModelsContract, strongly_connected

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600
REFERENCE = re.compile(r"^shared(\.\w+)+:\w+$")


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_module_under_shared_is_longer_than_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "shared").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def _references() -> set[str]:
    """Every "module:name" string in functions/ and shared/web/, and prefixes `X = "module:"`
    completed by `X + "Name"`."""
    found: set[str] = set()
    for path in [*(ROOT / "functions").glob("*.py"), *(ROOT / "shared" / "web").glob("*.py")]:
        tree = ast.parse(path.read_text())
        prefixes: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and REFERENCE.match(node.value):
                found.add(node.value)
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and re.fullmatch(r"shared(\.\w+)+:", node.value.value)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        prefixes[target.id] = node.value.value
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.left, ast.Name)
                and node.left.id in prefixes
                and isinstance(node.right, ast.Constant)
            ):
                found.add(prefixes[node.left.id] + str(node.right.value))
    return found


def test_every_lazily_named_model_is_where_its_name_says() -> None:
    references = _references()
    assert len(references) > 40  # the scan sees the routes' models
    for reference in sorted(references):
        module, _, name = reference.partition(":")
        thing = getattr(importlib.import_module(module), name, None)
        assert thing is not None, reference
        # The reference names the model's home, not a module that merely re-exports it.
        assert getattr(thing, "__module__", module) == module, reference


def test_every_registered_route_resolves_its_models_and_checkers() -> None:
    import function_app  # noqa: F401 - registers every route
    from shared.web.api import ROUTES, _import_model, resolve_model

    for spec in ROUTES:
        for ref in (spec.body, spec.query, spec.response):
            if ref is not None:
                assert resolve_model(ref) is not None, (spec.route, ref)
        for _, checker in spec.params:
            assert callable(_import_model(checker)), (spec.route, checker)


def _pure_models(**options: object) -> PureModelsContract:
    base = {
        "package": "shared",
        "kernel": "shared.kernel",
        "not_capabilities": ["kernel", "adapters"],
        "model_modules": ["model", "documents"],
    }
    return PureModelsContract("pure models", {}, {**base, **options})


def test_the_model_contract_refuses_services_and_internals_and_finds_new_capabilities() -> None:
    graph = grimp.ImportGraph()
    for module in (
        "shared",
        "shared.runtime",
        "shared.kernel",
        "shared.kernel.ids",
        "shared.adapters",
        "shared.adapters.store",
        *(f"shared.{c}" for c in ("a", "b", "later")),
        *(f"shared.{c}.{m}" for c in ("a", "b", "later") for m in ("api", "model", "documents", "service")),
        "shared.a.pure",
        "pydantic",
    ):
        graph.add_module(module)
    allowed = [
        ("shared.a.model", "shared.kernel.ids"),
        ("shared.a.model", "shared.b.api"),
        ("shared.a.model", "shared.b"),
        ("shared.a.model", "shared.a.documents"),
        ("shared.a.documents", "shared.a.model"),
        ("shared.a.model", "shared.a.pure"),  # named in extra_models
        ("shared.a.model", "pydantic"),
        ("shared.a.service", "shared.a.api"),  # a service is not checked
    ]
    refused = [
        ("shared.a.model", "shared.a.service"),
        ("shared.a.documents", "shared.a.api"),
        ("shared.a.model", "shared.b.service"),
        ("shared.a.model", "shared.b.model"),
        ("shared.a.model", "shared.adapters.store"),
        ("shared.a.model", "shared.runtime"),
        ("shared.later.model", "shared.later.service"),  # listed nowhere: found
    ]
    for importer, imported in allowed + refused:
        graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="import")
    check = _pure_models(extra_models=["a.pure"]).check(graph, verbose=False)
    assert not check.kept
    assert [(b["importer"], b["imported"]) for b in check.metadata["broken"]] == sorted(refused)
    nothing = _pure_models(model_modules=["domain"]).check(graph, verbose=False)
    assert not nothing.kept  # options that match no module do not pass by checking nothing


def test_the_model_contract_checks_every_capabilitys_model_module() -> None:
    graph = grimp.build_graph("shared", exclude_type_checking_imports=True, cache_dir=None)
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    options = next(c for c in settings["contracts"] if c["type"] == "pure_models")
    contract = PureModelsContract(options["name"], {}, options)
    checked = {m for c in contract.capabilities(graph) for m in contract.models_of(graph, c)}
    on_disk = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "shared").glob("*/model.py")
    }
    assert on_disk >= {"shared.audit.model", "shared.kpis.model", "shared.live.model", "shared.routing.model"}
    assert on_disk <= checked
    check = contract.check(graph, verbose=False)
    assert check.kept, check.metadata["broken"]


def test_the_cycle_finder_finds_cycles_and_nothing_else() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set(), "c": {"b"}}) == []
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b"], ["c", "d"]]


# The errors a lost race or a passing failure raises: a loop that catches one and goes round again
# is a retry policy of its own. The dev host (host machinery: it plays the Functions host's own
# retry policies) is not ours to police here.
RETRIED_ERRORS = {"Conflict", "PreconditionFailed", "IfMatchFailed", "Again", "Unavailable"}


def _caught(handler: ast.ExceptHandler) -> set[str]:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return {
        t.id if isinstance(t, ast.Name) else t.attr for t in types if isinstance(t, ast.Name | ast.Attribute)
    }


def _within(loop: ast.For | ast.AsyncFor | ast.While) -> list[ast.AST]:
    """The loop's body, not descending into nested functions (a step the policy runs is fine) nor
    nested loops (they answer for themselves: a handler there goes round the inner loop)."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = list(loop.body)
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.For | ast.AsyncFor | ast.While
        ):
            todo += list(ast.iter_child_nodes(node))
    return found


def hand_retry_loops(source: str) -> list[int]:
    """Lines of `while` loops and `for _ in range(...)` loops that catch a retried error and go
    round again (a handler that does not leave the loop)."""
    lines: list[int] = []
    for loop in ast.walk(ast.parse(source)):
        counted = (
            isinstance(loop, ast.For)
            and isinstance(loop.iter, ast.Call)
            and isinstance(loop.iter.func, ast.Name)
            and loop.iter.func.id == "range"
        )
        if not (counted or isinstance(loop, ast.While)):
            continue
        for node in _within(loop):  # type: ignore[arg-type]
            if not isinstance(node, ast.Try):
                continue
            for handler in node.handlers:
                leaves = any(isinstance(n, ast.Return | ast.Raise | ast.Break) for n in ast.walk(handler))
                if _caught(handler) & RETRIED_ERRORS and not leaves:
                    lines.append(loop.lineno)
    return sorted(set(lines))


def test_no_hand_written_retry_loops() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("shared", "functions")
        for path in (ROOT / folder).rglob("*.py")
        for line in hand_retry_loops(path.read_text())
    }
    assert found == set(), "retry through shared.kernel.retry.retry, not a loop of your own"


def test_the_retry_loop_finder_finds_hand_loops_and_nothing_else() -> None:
    hand = """
for _ in range(3):
    try:
        await step()
    except Conflict:
        continue
"""
    forever = """
while True:
    try:
        return await step()
    except (errors.PreconditionFailed, KeyError):
        pass
"""
    paging = """
while token:
    for doc in page.items:
        try:
            await commit(doc)
        except (NotFound, PreconditionFailed):
            continue
"""
    policy = """
async def step():
    return await create()

while True:
    async def inner():
        try:
            return await create()
        except Conflict:
            pass
    break
"""
    assert hand_retry_loops(hand) == [2]
    assert hand_retry_loops(forever) == [2]
    assert hand_retry_loops(paging) == []
    assert hand_retry_loops(policy) == []


def test_one_counting_document_store() -> None:
    """Every op-count figure and assertion counts through bench/counting.py: a second counting
    wrapper would count by other rules."""
    pattern = re.compile(r"^class \w*Counting\w*\b", re.MULTILINE)
    found = {
        str(path.relative_to(ROOT))
        for folder in ("bench", "tests", "shared", "devhost", "ops")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text())
    }
    assert found == {"bench/counting.py"}
