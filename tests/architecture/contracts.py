"""import-linter contract types of our own (pyproject.toml names them; `lint-imports` loads them
from the repository root). The built-in types cannot say these three rules in one line each."""

from __future__ import annotations

from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output


class PublicModulesContract(Contract):
    """Capabilities reach each other only through their public module: an import from outside
    `<package>.<capability>` into it must name `<package>.<capability>.api` (or the package
    itself). Options: `package` (e.g. `shared`), `capabilities` (their names)."""

    type_name = "public_modules"

    package = fields.StringField()
    capabilities = fields.ListField(subfield=fields.StringField())
    public_module = fields.StringField(required=False, default="api")

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        broken: list[dict[str, Any]] = []
        for capability in self.capabilities:  # type: ignore[attr-defined]
            home = f"{self.package}.{capability}"  # type: ignore[attr-defined]
            allowed = {home, f"{home}.{self.public_module}"}  # type: ignore[attr-defined]
            internals = {m for m in graph.find_descendants(home)} - allowed
            for internal in sorted(internals):
                for importer in sorted(graph.find_modules_that_directly_import(internal)):
                    if importer == home or importer.startswith(home + "."):
                        continue
                    broken.append(broken_import(graph, importer, internal))
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["broken"]:
            output.print_error(
                f"{described(item)}: import the capability's public module instead",
                bold=False,
            )
            output.new_line()


class PureModelsContract(Contract):
    """Inside a capability the model imports nothing from its services (cosmicpython's rule).

    Every capability is checked, found rather than listed: each subpackage of `package` but
    `not_capabilities` (so a capability added later is covered the day it lands). Its model
    modules are the ones named `model_modules` (`<package>.<capability>.<name>`, a package's
    modules included) and the `extra_models` named outright. A model module may import, inside
    `package`, only the kernel (`kernel`), its own capability's model modules, and another
    capability's public module (`public_module`, or the package itself: it has services behind
    it, and the model may use its types, so imports are checked one step deep). Anything else
    breaks the contract: its own services (any module of the capability that is not a model
    module), its own public module, another capability's internals, adapters, runtime, web,
    config. Imports under `if TYPE_CHECKING:` are left out by the session option."""

    type_name = "pure_models"

    package = fields.StringField()
    kernel = fields.StringField()
    not_capabilities = fields.ListField(subfield=fields.StringField())
    model_modules = fields.ListField(subfield=fields.StringField())
    extra_models = fields.ListField(subfield=fields.StringField(), required=False, default=[])
    public_module = fields.StringField(required=False, default="api")

    def capabilities(self, graph: grimp.ImportGraph) -> list[str]:
        package: str = self.package  # type: ignore[attr-defined]
        skipped = {f"{package}.{name}" for name in self.not_capabilities}  # type: ignore[attr-defined]
        return sorted(c for c in graph.find_children(package) if graph.find_children(c) and c not in skipped)

    def models_of(self, graph: grimp.ImportGraph, capability: str) -> set[str]:
        named = {f"{capability}.{name}" for name in self.model_modules}  # type: ignore[attr-defined]
        named |= {
            f"{self.package}.{extra}"  # type: ignore[attr-defined]
            for extra in self.extra_models  # type: ignore[attr-defined]
            if f"{self.package}.{extra}".startswith(capability + ".")  # type: ignore[attr-defined]
        }
        return {m for m in named if m in graph.modules} | {
            d for m in named if m in graph.modules for d in graph.find_descendants(m)
        }

    def allowed(self, imported: str, capability: str, models: set[str], capabilities: list[str]) -> bool:
        kernel: str = self.kernel  # type: ignore[attr-defined]
        if imported == kernel or imported.startswith(kernel + "."):
            return True
        if imported in models:
            return True
        other = next((c for c in capabilities if imported == c or imported.startswith(c + ".")), None)
        return (
            other is not None and other != capability and imported in {other, f"{other}.{self.public_module}"}
        )  # type: ignore[attr-defined]

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        package: str = self.package  # type: ignore[attr-defined]
        capabilities = self.capabilities(graph)
        broken: list[dict[str, Any]] = []
        checked = 0
        for capability in capabilities:
            models = self.models_of(graph, capability)
            checked += len(models)
            for model in sorted(models):
                for imported in sorted(graph.find_modules_directly_imported_by(model)):
                    if imported != package and not imported.startswith(package + "."):
                        continue  # the standard library, pydantic, ...
                    if self.allowed(imported, capability, models, capabilities):
                        continue
                    broken.append(broken_import(graph, model, imported))
        if not checked:  # a misnamed option must not pass by checking nothing
            broken.append({"importer": package, "imported": "-", "lines": [], "none": True})
        return ContractCheck(kept=not broken, metadata={"broken": broken, "checked": checked})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["broken"]:
            if item.get("none"):
                output.print_error("no model module found: check the contract's options", bold=False)
            else:
                output.print_error(
                    f"{described(item)}: a model imports only the kernel, its own model modules and "
                    "other capabilities' public modules",
                    bold=False,
                )
            output.new_line()


class AcyclicContract(Contract):
    """No import cycles between modules under `packages`: the import graph (lazy, function-level
    imports included; `if TYPE_CHECKING:` imports excluded by the session option) has no strongly
    connected component of more than one module."""

    type_name = "acyclic"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        modules = {
            m
            for package in self.packages  # type: ignore[attr-defined]
            for m in {package, *graph.find_descendants(package)}
        }
        cycles = strongly_connected(
            {m: {d for d in graph.find_modules_directly_imported_by(m) if d in modules} for m in modules}
        )
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error("cycle: " + " <-> ".join(cycle), bold=False)
            output.new_line()


def broken_import(graph: grimp.ImportGraph, importer: str, imported: str) -> dict[str, Any]:
    """A forbidden import as the contracts report it, with its line numbers."""
    details = graph.get_import_details(importer=importer, imported=imported)
    return {"importer": importer, "imported": imported, "lines": [d["line_number"] for d in details]}


def described(item: dict[str, Any]) -> str:
    return f"{item['importer']} -> {item['imported']} (l. {', '.join(map(str, item['lines']))})"


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Any]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
