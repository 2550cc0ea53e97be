"""The containers, queues, topics, subscriptions and subscription rules Bicep creates are exactly
those in shared/kernel/catalog.py, both ways."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared.kernel.catalog import CONTAINERS, QUEUES, TOPICS
from shared.kernel.documents import ContainerSpec
from shared.kernel.messages import QueueSpec, SubscriptionSpec, TopicSpec
from tests.infra.bicep import (
    CATALOG_JSON,
    MAIN,
    ROOT,
    module_path,
    modules,
    parse,
    render,
    resource,
    resources,
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
        assert set(entry) <= {
            "name",
            "partitionKeyPath",
            "defaultTtl",
            "fullTextPaths",
            "fullTextPathsPreview",
            "fullTextIndexes",
        }
        assert [p["path"] for p in entry.get("fullTextPaths", [])] == [p.path for p in spec.full_text]


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
    assert render(mods["serviceBus"].body["params"]["topics"]) == "catalog.topics"
    assert render(mods["serviceBus"].body["params"]["subscriptions"]) == "catalog.subscriptions"
    assert render(mods["serviceBus"].body["params"]["subscriptionRules"]) == "catalog.subscriptionRules"
    # One app setting per topic and per subscription too, so triggers can say %SETTING%.
    for variable_name, array in (
        ("topicSettings", "catalog.topics"),
        ("subscriptionSettings", "catalog.subscriptions"),
    ):
        loop = parse(MAIN)["variables"][variable_name]["value"]
        assert render(loop["loop_type"]["detail"]["array_name"]) == array
        item = loop["loop_type"]["detail"]["item_name"]
        assert render(loop["config"]) == f"{{name: {item}.setting, value: {item}.name}}"
    assert (
        render(mods["api"].body["params"]["extraAppSettings"])
        == "concat(queueSettings, topicSettings, subscriptionSettings)"
    )


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


# --- topics, subscriptions and rules -------------------------------------------------------------


def test_every_catalog_topic_is_in_infra_with_the_same_settings_and_nothing_else() -> None:
    infra = checked_in()["topics"]
    assert [entry["name"] for entry in infra] == list(TOPICS)
    for entry, spec in zip(infra, TOPICS.values(), strict=True):
        assert entry["setting"] == spec.setting
        assert parse_duration(entry["duplicateDetectionHistoryTimeWindow"]) == spec.duplicate_detection_window
        assert parse_duration(entry["defaultMessageTimeToLive"]) == spec.default_message_ttl
        assert set(entry) == {
            "name",
            "setting",
            "duplicateDetectionHistoryTimeWindow",
            "defaultMessageTimeToLive",
        }


def _catalog_subscriptions() -> list[tuple[TopicSpec, SubscriptionSpec]]:
    return [(topic, sub) for topic in TOPICS.values() for sub in topic.subscriptions]


def test_every_catalog_subscription_is_in_infra_under_its_topic_with_the_same_settings() -> None:
    catalog = checked_in()
    infra = catalog["subscriptions"]
    expected = _catalog_subscriptions()
    assert [(e["topic"], e["name"]) for e in infra] == [(t.name, s.name) for t, s in expected]
    for entry, (topic, spec) in zip(infra, expected, strict=True):
        assert catalog["topics"][entry["topicIndex"]]["name"] == topic.name
        assert entry["setting"] == spec.setting
        assert entry["maxDeliveryCount"] == spec.max_delivery_count
        assert parse_duration(entry["lockDuration"]) == spec.lock_duration
        assert entry["requiresSession"] is spec.requires_session
        assert parse_duration(entry["defaultMessageTimeToLive"]) == spec.default_message_ttl
        assert entry["deadLetteringOnMessageExpiration"] is spec.dead_lettering_on_expiration


def test_every_subject_filter_is_one_rule_and_every_rule_is_a_subject_filter() -> None:
    catalog = checked_in()
    infra = {(r["topic"], r["subscription"], r["subject"]) for r in catalog["subscriptionRules"]}
    expected = {(t.name, s.name, subject) for t, s in _catalog_subscriptions() for subject in s.subjects}
    assert infra == expected
    assert len(infra) == len(catalog["subscriptionRules"])
    for rule in catalog["subscriptionRules"]:
        parent = catalog["subscriptions"][rule["subscriptionIndex"]]
        assert (parent["topic"], parent["name"]) == (rule["topic"], rule["subscription"])
        assert rule["name"] == rule["subject"]


def test_topic_and_subscription_settings_are_valid_for_service_bus() -> None:
    for topic in TOPICS.values():
        assert timedelta(seconds=20) <= topic.duplicate_detection_window <= timedelta(days=7), topic.name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,259}", topic.name), topic.name
        names = [sub.name for sub in topic.subscriptions]
        assert len(names) == len(set(names)), f"{topic.name} has two subscriptions of one name"
        for sub in topic.subscriptions:
            assert timedelta(seconds=5) <= sub.lock_duration <= timedelta(minutes=5), sub.name
            assert sub.max_delivery_count >= 1, sub.name
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}", sub.name), sub.name
    settings = [spec.setting for spec in QUEUES.values()]
    settings += [topic.setting for topic in TOPICS.values()]
    settings += [sub.setting for _, sub in _catalog_subscriptions()]
    assert len(settings) == len(set(settings)), "two entities share an app setting"
    assert not set(QUEUES) & set(TOPICS), "queues and topics share one namespace of names"


def test_the_events_topic_detects_duplicates_and_the_lease_container_is_partitioned_by_id() -> None:
    assert TOPICS["events"].setting == "EVENTS_TOPIC"
    assert TOPICS["events"].duplicate_detection_window >= timedelta(minutes=10)
    # The Cosmos DB trigger requires its lease container to be partitioned by /id.
    assert CONTAINERS["leases"].partition_key_path == "/id"


def test_the_generator_flattens_subscriptions_and_rules_with_parent_indexes() -> None:
    gen = _generator()
    topics = {
        "events": TopicSpec(
            "events",
            "EVENTS_TOPIC",
            duplicate_detection_window=timedelta(hours=1),
            subscriptions=(
                SubscriptionSpec("realtime", "REALTIME_SUB"),
                SubscriptionSpec(
                    "reminders",
                    "REMINDERS_SUB",
                    max_delivery_count=5,
                    lock_duration=timedelta(seconds=30),
                    requires_session=True,
                    subjects=("appointment.booked", "appointment.cancelled"),
                ),
            ),
        ),
        "audit": TopicSpec(
            "audit", "AUDIT_TOPIC", subscriptions=(SubscriptionSpec("archive", "ARCHIVE_SUB"),)
        ),
    }

    flat = gen.topology(topics)

    assert flat["topics"][0] == {
        "name": "events",
        "setting": "EVENTS_TOPIC",
        "duplicateDetectionHistoryTimeWindow": "PT1H",
        "defaultMessageTimeToLive": "P14D",
    }
    assert [(s["topic"], s["topicIndex"], s["name"]) for s in flat["subscriptions"]] == [
        ("events", 0, "realtime"),
        ("events", 0, "reminders"),
        ("audit", 1, "archive"),
    ]
    assert flat["subscriptions"][1] == {
        "topic": "events",
        "topicIndex": 0,
        "name": "reminders",
        "setting": "REMINDERS_SUB",
        "maxDeliveryCount": 5,
        "lockDuration": "PT30S",
        "requiresSession": True,
        "defaultMessageTimeToLive": "P14D",
        "deadLetteringOnMessageExpiration": True,
    }
    assert flat["subscriptionRules"] == [
        {
            "topic": "events",
            "subscription": "reminders",
            "subscriptionIndex": 1,
            "name": subject,
            "subject": subject,
        }
        for subject in ("appointment.booked", "appointment.cancelled")
    ]


def test_a_subject_that_cannot_name_a_rule_is_refused() -> None:
    topic = TopicSpec(
        "t", "T", subscriptions=(SubscriptionSpec("s", "S", subjects=("a subject with spaces",)),)
    )
    with pytest.raises(ValueError, match="cannot name a Service Bus rule"):
        _generator().topology({"t": topic})


def test_each_catalog_topic_becomes_a_service_bus_topic_with_duplicate_detection() -> None:
    topics = resource(module_path("servicebus"), "Microsoft.ServiceBus/namespaces/topics")
    assert topics.loop_over == "topics"
    item = topics.loop_item
    assert render(topics.body["name"]) == f"{item}.name"
    props = topics.body["properties"]
    assert props["requiresDuplicateDetection"] is True
    for key in ("duplicateDetectionHistoryTimeWindow", "defaultMessageTimeToLive"):
        assert render(props[key]) == f"{item}.{key}"


def test_each_catalog_subscription_becomes_a_subscription_of_its_topic_with_its_settings() -> None:
    subs = resource(module_path("servicebus"), "Microsoft.ServiceBus/namespaces/topics/subscriptions")
    assert subs.loop_over == "subscriptions"
    item = subs.loop_item
    assert render(subs.body["parent"]) == f"serviceBusTopics[{item}.topicIndex]"
    assert render(subs.body["name"]) == f"{item}.name"
    props = subs.body["properties"]
    for key in (
        "maxDeliveryCount",
        "lockDuration",
        "requiresSession",
        "defaultMessageTimeToLive",
        "deadLetteringOnMessageExpiration",
    ):
        assert render(props[key]) == f"{item}.{key}"


def test_each_catalog_subject_becomes_a_correlation_filter_rule_on_the_label() -> None:
    rules = resource(module_path("servicebus"), "Microsoft.ServiceBus/namespaces/topics/subscriptions/rules")
    assert rules.loop_over == "subscriptionRules"
    item = rules.loop_item
    assert render(rules.body["parent"]) == f"serviceBusSubscriptions[{item}.subscriptionIndex]"
    assert render(rules.body["name"]) == f"{item}.name"
    props = rules.body["properties"]
    assert props["filterType"] == "CorrelationFilter"
    assert render(props["correlationFilter"]) == f"{{label: {item}.subject}}"


def test_the_service_bus_roles_sit_on_the_namespace_so_they_cover_topics_and_subscriptions() -> None:
    assignments = resources(module_path("servicebus"), "Microsoft.Authorization/roleAssignments")
    assert assignments
    assert all(assignment.body["scope"] == "namespace" for assignment in assignments)
