"""Write infra/catalog.json from shared/kernel/catalog.py: the containers, queues, topics, subscriptions and
subscription rules Bicep creates.

    python scripts/gen_infra_catalog.py          # rewrite infra/catalog.json
    python scripts/gen_infra_catalog.py --check  # exit 1 if infra/catalog.json is stale

`infra/main.bicep` loads the file with `loadJsonContent('catalog.json')`; tests/infra checks that the
checked-in file equals what this script generates now, so the code's catalogue and the deployed
resources cannot drift apart. Subscriptions and rules are flat lists that point at their parent by
index (`topicIndex`, `subscriptionIndex`): Bicep has no nested resource loops, and the flattening the
Bicep language could do (`map`, lambdas) is beyond what checkov's parser reads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.kernel.catalog import CONTAINERS, QUEUES, TOPICS  # noqa: E402
from shared.kernel.documents import ContainerSpec  # noqa: E402
from shared.kernel.messages import QueueSpec, SubscriptionSpec, TopicSpec  # noqa: E402

CATALOG_JSON = ROOT / "infra" / "catalog.json"
# Service Bus rule names: letters, digits, periods, hyphens and underscores, at most 50.
RULE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,50}$")


def iso_duration(value: timedelta) -> str:
    """ISO-8601 duration as Service Bus writes it back (`PT1M`, `PT10M`, `P14D`, `P1DT2H`)."""
    total = int(value.total_seconds())
    if total <= 0 or value != timedelta(seconds=total):
        raise ValueError(f"duration must be a positive whole number of seconds: {value!r}")
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + date + ("T" + time if time else "")


def container_entry(spec: ContainerSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "partitionKeyPath": spec.partition_key_path}
    if spec.default_ttl is not None:  # None = TTL off: Bicep leaves `defaultTtl` out entirely
        entry["defaultTtl"] = spec.default_ttl
    if spec.full_text:
        # Bicep adds the fullTextPolicy (one of the two path lists: with Cosmos DB's preview
        # languages, or English analysers only) and the fullTextIndexes; written out whole here
        # because checkov's Bicep parser reads no lambdas in a resource loop.
        entry["fullTextPaths"] = [{"path": p.path, "language": p.language} for p in spec.full_text]
        entry["fullTextPathsPreview"] = [
            {"path": p.path, "language": p.preview_language or p.language} for p in spec.full_text
        ]
        entry["fullTextIndexes"] = [{"path": p.path} for p in spec.full_text]
    return entry


def queue_entry(spec: QueueSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "setting": spec.setting,
        "maxDeliveryCount": spec.max_delivery_count,
        "lockDuration": iso_duration(spec.lock_duration),
        "duplicateDetectionHistoryTimeWindow": iso_duration(spec.duplicate_detection_window),
        "defaultMessageTimeToLive": iso_duration(spec.default_message_ttl),
        "deadLetteringOnMessageExpiration": spec.dead_lettering_on_expiration,
    }


def topic_entry(spec: TopicSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "setting": spec.setting,
        "duplicateDetectionHistoryTimeWindow": iso_duration(spec.duplicate_detection_window),
        "defaultMessageTimeToLive": iso_duration(spec.default_message_ttl),
    }


def subscription_entry(topic: TopicSpec, topic_index: int, spec: SubscriptionSpec) -> dict[str, Any]:
    return {
        "topic": topic.name,
        "topicIndex": topic_index,
        "name": spec.name,
        "setting": spec.setting,
        "maxDeliveryCount": spec.max_delivery_count,
        "lockDuration": iso_duration(spec.lock_duration),
        "requiresSession": spec.requires_session,
        "defaultMessageTimeToLive": iso_duration(spec.default_message_ttl),
        "deadLetteringOnMessageExpiration": spec.dead_lettering_on_expiration,
    }


def rule_entries(topic: TopicSpec, spec: SubscriptionSpec, subscription_index: int) -> list[dict[str, Any]]:
    """One correlation-filter rule on the label per subject; none (the default rule) for all."""
    entries = []
    for subject in spec.subjects:
        if not RULE_NAME.match(subject):
            where = f"{topic.name}/{spec.name}"
            raise ValueError(f"subject {subject!r} of {where} cannot name a Service Bus rule")
        entries.append(
            {
                "topic": topic.name,
                "subscription": spec.name,
                "subscriptionIndex": subscription_index,
                "name": subject,
                "subject": subject,
            }
        )
    return entries


def topology(topics: dict[str, TopicSpec]) -> dict[str, list[dict[str, Any]]]:
    subscriptions: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for topic_index, topic in enumerate(topics.values()):
        for spec in topic.subscriptions:
            rules += rule_entries(topic, spec, len(subscriptions))
            subscriptions.append(subscription_entry(topic, topic_index, spec))
    return {
        "topics": [topic_entry(topic) for topic in topics.values()],
        "subscriptions": subscriptions,
        "subscriptionRules": rules,
    }


def build_catalog() -> dict[str, Any]:
    return {
        "$comment": "Generated from shared/kernel/catalog.py by scripts/gen_infra_catalog.py; do not edit.",
        "containers": [container_entry(spec) for spec in CONTAINERS.values()],
        "queues": [queue_entry(spec) for spec in QUEUES.values()],
        **topology(TOPICS),
    }


def render() -> str:
    return json.dumps(build_catalog(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if infra/catalog.json is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = CATALOG_JSON.read_text(encoding="utf-8") if CATALOG_JSON.exists() else ""
        if current != text:
            print(f"{CATALOG_JSON} is stale: run python scripts/gen_infra_catalog.py", file=sys.stderr)
            return 1
        return 0
    CATALOG_JSON.write_text(text, encoding="utf-8")
    print(f"wrote {CATALOG_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
