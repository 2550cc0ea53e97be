"""The containers and queues Bicep creates are exactly those in shared/catalog.py, both ways."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared.catalog import CONTAINERS, QUEUES
from shared.ports.documents import ContainerSpec
from shared.ports.messages import QueueSpec
from tests.infra.bicep import (
    CATALOG_JSON,
    MAIN,
    ROOT,
    module_path,
    modules,
    parse,
    render,
    resource,
    variable,
)

ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_infra_catalog", ROOT / "scripts" / "gen_infra_catalog.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_duration(text: str) -> timedelta:
    """Independent of the generator: read an ISO-8601 duration back."""
    match = ISO_DURATION.match(text)
    assert match, f"not an ISO-8601 duration: {text!r}"
    assert text not in ("P", "PT"), f"empty ISO-8601 duration: {text!r}"
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def checked_in() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOG_JSON.read_text(encoding="utf-8"))
    return data


def test_catalog_json_is_what_the_generator_writes_from_shared_catalog() -> None:
    assert CATALOG_JSON.read_text(encoding="utf-8") == _generator().render(), (
        "infra/catalog.json is stale: run python scripts/gen_infra_catalog.py"
    )


def test_every_catalog_container_is_in_infra_with_the_same_settings_and_nothing_else() -> None:
    infra = {entry["name"]: entry for entry in checked_in()["containers"]}
    assert set(infra) == set(CONTAINERS)
    for name, spec in CONTAINERS.items():
        entry = infra[name]
        assert entry["partitionKeyPath"] == spec.partition_key_path
        # None = TTL off, so the property is absent; -1 and n > 0 are passed through unchanged.
        assert entry.get("defaultTtl") == spec.default_ttl
        assert ("defaultTtl" in entry) == (spec.default_ttl is not None)
        assert set(entry) <= {"name", "partitionKeyPath", "defaultTtl"}


def test_every_catalog_queue_is_in_infra_with_the_same_settings_and_nothing_else() -> None:
    infra = {entry["name"]: entry for entry in checked_in()["queues"]}
    assert set(infra) == set(QUEUES)
    for name, spec in QUEUES.items():
        entry = infra[name]
        assert entry["setting"] == spec.setting
        assert entry["maxDeliveryCount"] == spec.max_delivery_count
        assert parse_duration(entry["lockDuration"]) == spec.lock_duration
        assert parse_duration(entry["duplicateDetectionHistoryTimeWindow"]) == spec.duplicate_detection_window
        assert parse_duration(entry["defaultMessageTimeToLive"]) == spec.default_message_ttl
        assert entry["deadLetteringOnMessageExpiration"] is spec.dead_lettering_on_expiration


def test_queue_settings_are_valid_for_service_bus() -> None:
    for spec in QUEUES.values():
        assert timedelta(seconds=5) <= spec.lock_duration <= timedelta(minutes=5), spec.name
        assert timedelta(seconds=20) <= spec.duplicate_detection_window <= timedelta(days=7), spec.name
        assert spec.max_delivery_count >= 1, spec.name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,259}", spec.name), spec.name
    settings = [spec.setting for spec in QUEUES.values()]
    assert len(settings) == len(set(settings)), "two queues share an app setting"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=60), "PT1M"),
        (timedelta(minutes=10), "PT10M"),
        (timedelta(days=14), "P14D"),
        (timedelta(seconds=30), "PT30S"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "P1DT2H3M4S"),
        (timedelta(hours=1), "PT1H"),
    ],
)
def test_durations_are_written_as_iso_8601(value: timedelta, text: str) -> None:
    assert _generator().iso_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize("value", [timedelta(0), timedelta(seconds=-1), timedelta(milliseconds=1500)])
def test_durations_service_bus_cannot_hold_are_refused(value: timedelta) -> None:
    with pytest.raises(ValueError, match="duration"):
        _generator().iso_duration(value)


def test_the_generator_maps_a_queue_and_ttl_variants_faithfully() -> None:
    gen = _generator()
    queue = QueueSpec(
        "routing",
        "ROUTING_QUEUE",
        max_delivery_count=5,
        lock_duration=timedelta(minutes=2),
        duplicate_detection_window=timedelta(hours=1),
        default_message_ttl=timedelta(days=1),
        dead_lettering_on_expiration=False,
    )
    assert gen.queue_entry(queue) == {
        "name": "routing",
        "setting": "ROUTING_QUEUE",
        "maxDeliveryCount": 5,
        "lockDuration": "PT2M",
        "duplicateDetectionHistoryTimeWindow": "PT1H",
        "defaultMessageTimeToLive": "P1D",
        "deadLetteringOnMessageExpiration": False,
    }
    assert "defaultTtl" not in gen.container_entry(ContainerSpec("a", "/id"))
    assert gen.container_entry(ContainerSpec("b", "/id", default_ttl=-1))["defaultTtl"] == -1
    assert gen.container_entry(ContainerSpec("c", "/pk", default_ttl=60))["defaultTtl"] == 60


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _generator()
    stale = tmp_path / "catalog.json"
    stale.write_text('{"containers": [], "queues": []}\n', encoding="utf-8")
    monkeypatch.setattr(gen, "CATALOG_JSON", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


def test_main_bicep_loads_the_catalogue_and_hands_it_to_cosmos_service_bus_and_the_app() -> None:
    assert render(variable(MAIN, "catalog")) == "load_json_content(catalog.json)"
    mods = modules()
    assert render(mods["cosmos"].body["params"]["containers"]) == "catalog.containers"
    assert render(mods["serviceBus"].body["params"]["queues"]) == "catalog.queues"
    # One app setting per queue: name = QueueSpec.setting, value = queue name.
    queue_settings = parse(MAIN)["variables"]["queueSettings"]["value"]
    assert render(queue_settings["loop_type"]["detail"]["array_name"]) == "catalog.queues"
    item = queue_settings["loop_type"]["detail"]["item_name"]
    assert render(queue_settings["config"]) == f"{{name: {item}.setting, value: {item}.name}}"
    assert render(mods["api"].body["params"]["extraAppSettings"]) == "queueSettings"


def test_each_catalog_container_becomes_a_cosmos_container_with_its_key_and_ttl() -> None:
    containers = resource(
        module_path("cosmos"), "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers"
    )
    assert containers.loop_over == "containers"
    assert containers.condition is None
    item = containers.loop_item
    assert render(containers.body["name"]) == f"{item}.name"
    body = containers.body["properties"]["resource"]["function"]
    assert body["type"] == "union"
    base, ttl = body["parameters"]["arg_1"], body["parameters"]["arg_2"]
    assert render(base["id"]) == f"{item}.name"
    assert render(base["partitionKey"]["paths"]) == f"[{item}.partitionKeyPath]"
    assert base["partitionKey"]["kind"] == "Hash"
    assert "defaultTtl" not in base
    # TTL only when the catalogue entry carries it (ContainerSpec.default_ttl not None).
    assert render(ttl) == f"contains({item}, defaultTtl) ? {{defaultTtl: {item}.defaultTtl}} : {{}}"
    assert base["indexingPolicy"]["indexingMode"] == "consistent"


def test_each_catalog_queue_becomes_a_service_bus_queue_with_its_settings() -> None:
    queues = resource(module_path("servicebus"), "Microsoft.ServiceBus/namespaces/queues")
    assert queues.loop_over == "queues"
    assert queues.condition is None
    item = queues.loop_item
    assert render(queues.body["name"]) == f"{item}.name"
    props = queues.body["properties"]
    for key in (
        "maxDeliveryCount",
        "lockDuration",
        "duplicateDetectionHistoryTimeWindow",
        "defaultMessageTimeToLive",
        "deadLetteringOnMessageExpiration",
    ):
        assert render(props[key]) == f"{item}.{key}"
    assert props["requiresDuplicateDetection"] is True
    assert props["requiresSession"] is False
