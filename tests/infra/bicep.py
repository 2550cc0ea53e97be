"""Read the Bicep under infra/ the way checkov does (pycep-parser, the version checkov pins) and
render parsed expressions back to compact Bicep-like text, so tests compare readable strings.

pycep does not tell identifiers from string literals (`location` and `'location'` both parse to
"location"); tests compare in contexts where that does not matter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
MODULES = INFRA / "modules"
CATALOG_JSON = INFRA / "catalog.json"

# Built-in role definition ids (Azure RBAC) and the Cosmos DB data-plane role id.
KNOWN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "090c5cfd-751d-490a-894a-3ce6f1109419": "Azure Service Bus Data Owner",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "00000000-0000-0000-0000-000000000002": "Cosmos DB Built-in Data Contributor",
    "12cf5a90-567b-43ae-8102-96cf46c7d9b4": "Web PubSub Service Owner",
    "09976791-48a7-449e-bb21-39d1a415f350": "Communication and Email Service Owner",
}

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parse_cached(path: str) -> str:
    # Cached as JSON text so every caller gets a fresh copy it may not mutate by accident.
    return json.dumps(BicepParser().parse(file_path=Path(path)), default=str)


def parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(_parse_cached(str(path)))
    return parsed


def module_path(name: str) -> Path:
    return MODULES / f"{name}.bicep"


# main.bicep's symbol for each module file (by file stem).
MODULE_SYMBOLS = {
    "servicebus": "serviceBus",
    "keyvault": "keyVault",
    "function-app": "api",
    "webpubsub": "webPubSub",
}


def main_params_for(stem: str) -> dict[str, Any]:
    """The params main.bicep passes to the module in modules/<stem>.bicep."""
    params: dict[str, Any] = modules()[MODULE_SYMBOLS.get(stem, stem)].body["params"]
    return params


def render(node: Any) -> str:
    """Compact text of a parsed expression: `queue.name`, `cond ? a : b`, `union(x, y)`."""
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int | float | str):
        return str(node)
    if isinstance(node, list):
        return "[" + ", ".join(render(item) for item in node) + "]"
    if isinstance(node, dict):
        if "operator" in node and len(node) == 1:
            op = node["operator"]
            kind, operands = op["type"], op["operands"]
            if kind == "property_accessor":
                return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
            if kind == "index_accessor":
                return f"{render(operands['operand_1'])}[{render(operands['operand_2'])}]"
            if kind == "conditional":
                return (
                    f"{render(operands['condition'])} ? {render(operands['true_value'])}"
                    f" : {render(operands['false_value'])}"
                )
            if kind == "equals":
                return f"{render(operands['operand_1'])} == {render(operands['operand_2'])}"
            return f"{kind}(" + ", ".join(render(v) for v in operands.values()) + ")"
        if "function" in node and len(node) == 1:
            fn = node["function"]
            args = ", ".join(render(v) for v in fn.get("parameters", {}).values() if v is not None)
            text = f"{fn['type']}({args})"
            return text + (f".{fn['property_name']}" if fn.get("property_name") else "")
        return "{" + ", ".join(f"{k}: {render(v)}" for k, v in node.items()) + "}"
    return repr(node)


@dataclass(frozen=True)
class Resource:
    """A resource or module declaration, with a loop unwrapped into its item body."""

    symbol: str
    type: str
    body: dict[str, Any]
    loop_item: str | None = None
    loop_over: str | None = None
    condition: str | None = None


def _unwrap(symbol: str, kind: str, config: dict[str, Any]) -> Resource:
    if "loop_type" in config:
        detail = config["loop_type"]["detail"]
        return Resource(
            symbol,
            kind,
            config["config"],
            loop_item=render(detail.get("item_name")),
            loop_over=render(detail.get("array_name")),
            condition=render(config["condition"]) if config.get("condition") is not None else None,
        )
    if "condition" in config and "config" in config and set(config) <= {"condition", "config"}:
        return Resource(symbol, kind, config["config"], condition=render(config["condition"]))
    return Resource(symbol, kind, config)


def resources(path: Path, type_: str | None = None) -> list[Resource]:
    found = []
    for symbol, res in parse(path).get("resources", {}).items():
        if type_ is None or res["type"] == type_:
            found.append(_unwrap(symbol, res["type"], res["config"]))
    return found


def resource(path: Path, type_: str) -> Resource:
    matches = resources(path, type_)
    assert len(matches) == 1, f"expected one {type_} in {path.name}, found {len(matches)}"
    return matches[0]


def modules(path: Path = MAIN) -> dict[str, Resource]:
    found = {}
    for symbol, mod in parse(path).get("modules", {}).items():
        found[symbol] = _unwrap(symbol, mod["detail"]["path"], mod["config"])
    return found


def module_file(mod: Resource) -> Path:
    return (INFRA / mod.type).resolve()


def parameters(path: Path) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = parse(path).get("parameters", {})
    return params


def decorator(param: dict[str, Any], kind: str) -> Any:
    for deco in param.get("decorators", []):
        if deco["type"] == kind:
            return deco.get("argument", True)
    return None


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]
