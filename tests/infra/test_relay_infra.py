"""What the Cosmos DB triggers of the app (the outbox relay, functions/events.py) need from Azure,
checked against the Bicep: their connection is identity-based with the app's user-assigned
identity, the monitored and lease containers are catalogue containers Bicep creates (the lease one
partitioned by /id: an identity cannot create containers, so the trigger must not try), each
trigger has a lease prefix of its own, and the identity holds Cosmos DB Built-in Data Contributor
on the account (reading the feed, writing leases)."""

from __future__ import annotations

from typing import Any

from shared.kernel.catalog import CONTAINERS
from tests.conftest import registered_functions
from tests.infra.bicep import module_path, render, resources, variable
from tests.infra.test_templates import app_settings

DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


def cosmos_triggers() -> dict[str, dict[str, Any]]:
    found = {}
    for name, function in registered_functions().items():
        trigger = function.get_trigger()
        if trigger is not None and trigger.get_binding_name() == "cosmosDBTrigger":
            found[name] = trigger.get_dict_repr()
    return found


def test_the_relay_reads_each_aggregate_container() -> None:
    watched = {t["containerName"] for t in cosmos_triggers().values()}
    assert {"conversations", "appointments", "agents"} <= watched


def test_every_cosmos_trigger_connects_with_the_apps_identity() -> None:
    settings = app_settings()
    for name, trigger in cosmos_triggers().items():
        connection = trigger["connection"]
        assert settings.get(f"{connection}__accountEndpoint") == "cosmos.outputs.endpoint", name
        assert settings.get(f"{connection}__credential") == "managedidentity", name
        assert settings.get(f"{connection}__clientId") == "identity.outputs.clientId", name
        assert trigger["databaseName"] == "%COSMOS_DATABASE%", name
        assert "COSMOS_DATABASE" in settings


def test_every_cosmos_trigger_uses_containers_bicep_creates_and_its_own_lease_prefix() -> None:
    prefixes: dict[tuple[str, str], str] = {}
    for name, trigger in cosmos_triggers().items():
        assert trigger["containerName"] in CONTAINERS, name
        lease = trigger.get("leaseContainerName", "leases")
        assert CONTAINERS[lease].partition_key_path == "/id", name
        assert not trigger.get("createLeaseContainerIfNotExists"), name
        key = (lease, trigger.get("leaseContainerPrefix", ""))
        assert key not in prefixes, f"{name} shares its leases with {prefixes.get(key)}"
        prefixes[key] = name


def test_the_identity_is_a_cosmos_data_contributor_on_the_whole_account() -> None:
    (assignments,) = resources(
        module_path("cosmos"), "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"
    )
    assert variable(module_path("cosmos"), "dataContributorRoleId") == DATA_CONTRIBUTOR
    props = assignments.body["properties"]
    assert render(props["scope"]) == "account.id"  # every container, the leases among them
    assert "dataContributorRoleId" in render(props["roleDefinitionId"])
