"""What the Bicep promises, read from the parsed templates (no Bicep compiler runs here):
secure defaults, identity-only connections, the app settings the code reads, Flex Consumption."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.config import setting_names
from tests.infra.bicep import (
    GUID,
    INFRA,
    KNOWN_ROLES,
    MAIN,
    Resource,
    bicep_files,
    decorator,
    main_params_for,
    module_file,
    module_path,
    modules,
    parameters,
    parse,
    render,
    resource,
    resources,
    variable,
)

PRIVATE = "enablePrivateNetworking"


def props(res: Resource) -> dict[str, Any]:
    properties: dict[str, Any] = res.body["properties"]
    # `union(base, cond ? {...} : {})` adds an optional property; the base holds all the others.
    merged = properties.get("function") if set(properties) == {"function"} else None
    if merged is not None and merged["type"] == "union":
        base: dict[str, Any] = merged["parameters"]["arg_1"]
        return base
    return properties


# --- every template parses the way checkov parses it ------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_template_parses_with_the_parser_checkov_uses(path: Path) -> None:
    assert parse(path)["resources"] or parse(path).get("modules")


def test_pycep_here_is_the_version_checkov_pins() -> None:
    # checkov 3.3.30 pins pycep-parser==0.5.1; a newer pycep here would accept syntax checkov rejects.
    from importlib.metadata import version

    assert version("pycep-parser") == "0.5.1"


# --- module wiring (what `bicep build` would catch) --------------------------------------------


def test_every_module_gets_only_parameters_it_declares_and_all_it_requires() -> None:
    for symbol, mod in modules().items():
        declared = parameters(module_file(mod))
        passed = set(mod.body["params"])
        assert passed <= set(declared), f"{symbol}: unknown params {passed - set(declared)}"
        required = {name for name, p in declared.items() if p.get("default") is None}
        assert required <= passed, f"{symbol}: missing params {required - passed}"


def test_every_module_output_main_reads_exists() -> None:
    text = MAIN.read_text()
    mods = modules()
    for symbol, output in set(re.findall(r"\b(\w+)\.outputs\.(\w+)", text)):
        assert symbol in mods, f"{symbol} is not a module"
        outputs = parse(module_file(mods[symbol])).get("outputs", {})
        assert output in outputs, f"{symbol}.outputs.{output} is not declared"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_parameter_is_described_and_used(path: Path) -> None:
    text = path.read_text()
    for name, param in parameters(path).items():
        description = decorator(param, "description")
        assert description, f"{path.name}: param {name} has no @description"
        assert description.startswith(("Required.", "Optional.")), f"{path.name}: {name}: {description}"
        # no-unused-params is an error in bicepconfig.json: the name must appear beyond its declaration.
        uses = len(re.findall(rf"\b{re.escape(name)}\b", text))
        assert uses >= 2, f"{path.name}: param {name} is never used"
        if decorator(param, "secure"):
            # secure-parameter-default (an error in bicepconfig.json) allows only '' (or newGuid()).
            assert param.get("default") in (None, ""), f"{path.name}: secure param {name} has a default"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_variable_is_used(path: Path) -> None:
    text = path.read_text()
    for name in parse(path).get("variables", {}):
        assert len(re.findall(rf"\b{re.escape(name)}\b", text)) >= 2, f"{path.name}: var {name} is unused"


def test_bicepconfig_raises_the_style_linter_rules_to_errors() -> None:
    rules = json.loads((INFRA / "bicepconfig.json").read_text())["analyzers"]["core"]["rules"]
    for rule in (
        "outputs-should-not-contain-secrets",
        "secure-parameter-default",
        "no-hardcoded-env-urls",
        "no-unused-params",
    ):
        assert rules[rule]["level"] == "error", rule


def test_no_hardcoded_environment_urls() -> None:
    # The linter's default list; storage and login hosts differ in sovereign clouds.
    for path in bicep_files():
        for host in (
            "core.windows.net",
            "login.microsoftonline.com",
            "management.azure.com",
            "vault.azure.net",
        ):
            assert host not in path.read_text(), f"{path.name} hardcodes {host}: use environment()"


# --- azd conventions ---------------------------------------------------------------------------


def test_names_come_from_a_resource_token_and_resources_carry_the_azd_tag() -> None:
    assert render(variable(MAIN, "resourceToken")) == (
        "to_lower(unique_string(subscription().id, environmentName, location))"
    )
    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"
    assert render(variable(MAIN, "tags")) == "{'azd-env-name': environmentName}"
    rg = resource(MAIN, "Microsoft.Resources/resourceGroups")
    assert rg.body["tags"] == "tags"
    for mod in modules().values():
        if "tags" in parameters(module_file(mod)):
            assert mod.body["params"]["tags"] == "tags", mod.symbol


def test_every_tracked_resource_is_tagged() -> None:
    untagged_types = {"Microsoft.Authorization/roleAssignments", "Microsoft.Insights/diagnosticSettings"}
    for path in module_path("x").parent.glob("*.bicep"):
        for res in resources(path):
            if "location" in res.body and res.type not in untagged_types:
                assert "tags" in res.body, f"{path.name}: {res.symbol} has no tags"


def test_outputs_are_upper_snake_and_carry_no_secret() -> None:
    outputs = parse(MAIN)["outputs"]
    assert {"AZURE_LOCATION", "AZURE_RESOURCE_GROUP", "SERVICE_API_NAME", "AZURE_CLIENT_ID"} <= set(outputs)
    for name in outputs:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", name), name
        assert "SECRET" not in name
        assert "PASSWORD" not in name
        assert "CONNECTION_STRING" not in name


def test_the_function_app_is_tagged_as_the_azd_api_service() -> None:
    app = resource(module_path("function-app"), "Microsoft.Web/sites")
    assert render(app.body["tags"]) == "union(tags, {'azd-service-name': serviceName})"
    assert parameters(module_path("function-app"))["serviceName"]["default"] == "api"
    assert modules()["api"].body["params"]["serviceName"] == "api"


# --- Flex Consumption function app -------------------------------------------------------------


def test_the_function_app_runs_python_3_11_on_flex_consumption() -> None:
    path = module_path("function-app")
    plan = resource(path, "Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert props(plan)["reserved"] is True
    app = resource(path, "Microsoft.Web/sites")
    assert app.body["kind"] == "functionapp,linux"
    config = props(app)["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    scale = config["scaleAndConcurrency"]
    assert render(scale["triggers"]) == "{http: {perInstanceConcurrency: httpPerInstanceConcurrency}}"
    assert "alwaysReadyHttpInstances" in render(scale["alwaysReady"])
    assert render(scale["maximumInstanceCount"]) == "maximumInstanceCount"
    main_params = parameters(MAIN)
    for name in ("alwaysReadyHttpInstances", "httpPerInstanceConcurrency", "maximumInstanceCount"):
        assert name in main_params
        assert modules()["api"].body["params"][name] == name


def test_the_function_app_is_https_only_with_tls_1_2_and_no_basic_publishing() -> None:
    path = module_path("function-app")
    app = resource(path, "Microsoft.Web/sites")
    assert props(app)["httpsOnly"] is True
    site = props(app)["siteConfig"]
    assert site["minTlsVersion"] == "1.2"
    assert site["ftpsState"] == "Disabled"
    policies = {
        r.body["name"]: props(r)
        for r in resources(path, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert policies == {"ftp": {"allow": False}, "scm": {"allow": False}}


def test_the_function_app_uses_one_user_assigned_identity_for_everything() -> None:
    app = resource(module_path("function-app"), "Microsoft.Web/sites")
    assert app.body["identity"]["type"] == "UserAssigned"
    assert list(app.body["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    assert props(app)["keyVaultReferenceIdentity"] == "identityId"
    mods = modules()
    assert render(mods["api"].body["params"]["identityId"]) == "identity.outputs.resourceId"
    assert len(resources(module_path("identity"), "Microsoft.ManagedIdentity/userAssignedIdentities")) == 1


def app_settings() -> dict[str, str]:
    """Every app setting the function app gets: main's object, the module's own, queue settings."""
    settings = {k: render(v) for k, v in modules()["api"].body["params"]["appSettings"].items()}
    module_own = variable(module_path("function-app"), "allSettings")["function"]["parameters"]
    assert render(module_own["arg_1"]) == "appSettings"
    settings |= {k: render(v) for k, v in module_own["arg_2"].items()}
    app = resource(module_path("function-app"), "Microsoft.Web/sites")
    assert render(props(app)["siteConfig"]["appSettings"]) == "concat(settingsList, extraAppSettings)"
    return settings


# Settings shared/config.py reads that must never be set in Azure: secrets for local emulators.
LOCAL_ONLY = {
    "PSC_DEV_JWT_SECRET": "dev-mode token key; dev mode is refused in Azure",
    "COSMOS_EMULATOR_KEY": "Cosmos DB emulator key",
    "ServiceBusConnection": "Service Bus emulator connection string",
    "ARCHIVE_CONNECTION_STRING": "Azurite connection string",
    "PSC_REALTIME_KEY": "the embedded hub's access key; Web PubSub has local auth disabled",
}
# Settings that do not apply in Azure or whose code default is right there.
NOT_NEEDED_IN_AZURE = {
    "PSC_DATA_DIR": "embedded store and bus only",
    "PSC_ENTRA_AUTHORITY": "the code's default is the public-cloud authority",
    "AzureWebJobsStorage__blobServiceUri": "archive fallback; ARCHIVE__blobServiceUri is set",
    "PSC_CORS_ORIGINS": "dev host only; in Azure the platform's CORS (siteConfig.cors) decides",
    "PSC_REALTIME_PORT": "the embedded hub's port; Azure uses PSC_WEBPUBSUB_ENDPOINT",
}


def _catalog_settings() -> set[str]:
    """Queue, topic and subscription settings: Bicep sets one per catalogue entry through
    extraAppSettings (tests/infra/test_catalog_sync.py checks them)."""
    from shared.kernel.catalog import QUEUES, TOPICS

    names = {q.setting for q in QUEUES.values()} | {t.setting for t in TOPICS.values()}
    return names | {s.setting for t in TOPICS.values() for s in t.subscriptions}


def test_every_setting_the_code_reads_in_azure_is_set() -> None:
    # Bicep sets one app setting per queue, topic and subscription of the catalogue.
    catalog = json.loads((INFRA / "catalog.json").read_text())
    settings = {
        **app_settings(),
        **{
            entity["setting"]: entity["name"]
            for kind in ("queues", "topics", "subscriptions")
            for entity in catalog[kind]
        },
    }
    for name in setting_names().values():
        if name not in LOCAL_ONLY and name not in NOT_NEEDED_IN_AZURE and name not in _catalog_settings():
            assert name in settings, f"{name} is read by shared/config.py but not set by infra"


def test_every_setting_a_trigger_names_is_set_in_azure_the_sample_and_the_readme() -> None:
    """`%SETTING%` in a trigger is resolved by the host from app settings; unset, the function does
    not load in Azure and the dev host refuses to start."""
    from tests.conftest import registered_functions

    named = set()
    for function in registered_functions().values():
        for binding in json.loads(function.get_function_json())["bindings"]:
            for value in binding.values():
                named |= set(re.findall(r"%([^%]+)%", value)) if isinstance(value, str) else set()
    assert {"ROUTING_QUEUE", "PSC_SWEEP_SCHEDULE"} <= named
    catalog = json.loads((INFRA / "catalog.json").read_text())
    # main.bicep sets one app setting per queue, topic and subscription of the catalogue.
    in_azure = set(app_settings()) | {
        entity["setting"] for kind in ("queues", "topics", "subscriptions") for entity in catalog[kind]
    }
    sample = json.loads((INFRA.parent / "local.settings.sample.json").read_text())["Values"]
    readme = (INFRA.parent / "README.md").read_text()
    for name in named:
        assert name in in_azure, f"{name} is not set by infra"
        assert sample.get(name), f"{name} has no value in local.settings.sample.json"
        assert f"| `{name}` |" in readme, f"{name} is not in the README settings table"


def test_the_routing_sweep_is_a_rare_backstop_by_default() -> None:
    from devhost.schedules import Schedule

    default = parameters(MAIN)["routingSweepSchedule"]["default"]
    assert default == "0 */5 * * * *"
    assert app_settings()["PSC_SWEEP_SCHEDULE"] == "routingSweepSchedule"
    sample = json.loads((INFRA.parent / "local.settings.sample.json").read_text())["Values"]
    assert sample["PSC_SWEEP_SCHEDULE"] == default
    Schedule.parse(default)  # six-field NCRONTAB, as the host reads it


def test_no_local_only_secret_is_set_in_azure() -> None:
    settings = app_settings()
    for name in LOCAL_ONLY:
        assert name not in settings, name


def test_cors_is_the_platforms_from_one_parameter_never_an_app_setting() -> None:
    app = resource(module_path("function-app"), "Microsoft.Web/sites")
    cors = props(app)["siteConfig"]["cors"]
    assert render(cors["allowedOrigins"]) == "corsAllowedOrigins"
    assert cors["supportCredentials"] is False  # bearer tokens, not cookies
    assert parameters(module_path("function-app"))["corsAllowedOrigins"]["default"] == []
    assert parameters(MAIN)["corsAllowedOrigins"]["default"] == []  # nothing allowed by default
    assert modules()["api"].body["params"]["corsAllowedOrigins"] == "corsAllowedOrigins"
    assert not [name for name in app_settings() if "CORS" in name.upper()]


@pytest.mark.parametrize("name", ["main.dev.bicepparam", "main.prod.bicepparam"])
def test_parameter_files_list_only_origins_azure_would_match(name: str) -> None:
    from shared.config import parse_origins

    listed = re.findall(r"'([^']*)'", bicepparam(name)["corsAllowedOrigins"])
    assert parse_origins(",".join(listed)) == tuple(listed)


def test_app_settings_select_the_azure_backends_and_entra_auth() -> None:
    s = app_settings()
    assert s["PSC_STORE"] == "cosmos"
    assert s["PSC_BUS"] == "servicebus"
    assert s["PSC_AUTH_MODE"] == "entra"
    assert s["PSC_ENTRA_TENANT_ID"] == "entraTenantId"
    assert s["PSC_ENTRA_CLIENT_ID"] == "entraClientId"
    assert s["PSC_ENTRA_AUDIENCE"] == "entraAudience"
    assert s["PSC_ARCHIVE"] == "blob"
    assert s["ARCHIVE_CONTAINER"] == "storage.outputs.archiveContainerName"
    assert s["ARCHIVE__blobServiceUri"] == "storage.outputs.blobEndpoint"
    assert s["TRANSCRIPTS_CONTAINER"] == "storage.outputs.transcriptsContainerName"
    assert "PSC_DEV_JWT_SECRET" not in s


# App setting -> the main.bicep parameter that sets it, and the environment variable the azd
# parameters file and the bicepparam files read it from; None: a required parameter.
IDENTITY_SETTINGS = {
    "PSC_ENTRA_CLIENT_ID": ("entraClientId", None),
    "PSC_ENTRA_AUDIENCE": ("entraAudience", ""),
    "PSC_PATIENT_AUTHORITY": ("patientAuthority", ""),
    "PSC_PATIENT_TENANT_ID": ("patientTenantId", ""),
    "PSC_PATIENT_CLIENT_ID": ("patientClientId", ""),
}


@pytest.mark.parametrize("setting", IDENTITY_SETTINGS)
def test_identity_settings_flow_from_the_environment_to_app_settings(setting: str) -> None:
    param, default = IDENTITY_SETTINGS[setting]
    assert app_settings()[setting] == param
    declared = parameters(MAIN)[param]
    assert declared.get("default") == default
    if default is None:
        assert decorator(declared, "min_length") == 1
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    # azd passes "" for an unset variable and prompts only for parameters without a default.
    assert azd[param]["value"] == f"${{{setting}}}"
    for name in ("main.dev.bicepparam", "main.prod.bicepparam"):
        read = bicepparam(name)[param]
        expected = (
            f"readEnvironmentVariable('{setting}')"
            if default is None
            else (f"readEnvironmentVariable('{setting}', '')")
        )
        assert read == expected, name


def test_app_settings_are_identity_based_connections() -> None:
    s = app_settings()
    assert s["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert s["AzureWebJobsStorage__credential"] == "managedidentity"
    assert s["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert s["COSMOS__accountEndpoint"] == "cosmos.outputs.endpoint"
    assert s["ServiceBusConnection__fullyQualifiedNamespace"] == "serviceBus.outputs.fullyQualifiedNamespace"
    assert s["ServiceBusConnection__credential"] == "managedidentity"
    assert s["ServiceBusConnection__clientId"] == "identity.outputs.clientId"
    assert s["AZURE_CLIENT_ID"] == "identity.outputs.clientId"
    assert s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    # A connection string or key for storage would defeat allowSharedKeyAccess: false.
    assert "AzureWebJobsStorage" not in s
    # Flex Consumption rejects these (runtime comes from functionAppConfig; packages are managed).
    for forbidden in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"):
        assert forbidden not in s


def test_telemetry_is_sent_once_on_the_opentelemetry_path() -> None:
    """host.json OpenTelemetry mode; the worker's switch tells the host it exports its own logs
    (so the host stops forwarding them); the app configures one exporter (shared/telemetry.py).
    Nothing of the classic Application Insights path, which would send everything a second time."""
    host = json.loads((INFRA.parent / "host.json").read_text())
    assert host["telemetryMode"] == "OpenTelemetry"
    assert "applicationInsights" not in host.get("logging", {})  # classic-path sampling settings
    s = app_settings()
    assert s["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    assert s["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "applicationInsightsConnectionString"
    # The worker would configure a second exporter (root logger, no PHI filter) with this one.
    for classic in (
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "APPINSIGHTS_INSTRUMENTATIONKEY",
        "ApplicationInsightsAgent_EXTENSION_VERSION",
    ):
        assert classic not in s, classic


def test_the_webhook_secret_is_a_key_vault_reference_never_a_value() -> None:
    s = app_settings()
    assert s["PSC_WEBHOOK_SECRET"] == "@Microsoft.KeyVault(SecretUri=${keyVault.outputs.webhookKeyVaultUri})"
    webhook = parameters(MAIN)["webhookSecret"]
    assert decorator(webhook, "secure")
    assert webhook.get("default") is None
    assert modules()["keyVault"].body["params"]["webhookSecret"] == "webhookSecret"
    secret = key_vault_secret("webhookSecretResource")
    assert props(secret)["value"] == "webhookSecret"
    assert "exp" in props(secret)["attributes"]


def key_vault_secret(symbol: str) -> Resource:
    found = {r.symbol: r for r in resources(module_path("keyvault"), "Microsoft.KeyVault/vaults/secrets")}
    assert set(found) == {
        "webhookSecretResource",
        "botCallbackSecretResource",
        "teamsTokenResource",
        "linkSigningKeyResource",
    }
    return found[symbol]


def test_bot_callbacks_are_off_unless_deployed_with_hosts_and_a_key_vault_secret() -> None:
    s = app_settings()
    assert s["PSC_BOT_CALLBACK_HOSTS"] == "botCallbackHosts"
    # No secret given: no Key Vault reference to a secret that does not exist.
    assert s["PSC_BOT_CALLBACK_SECRET"] == (
        "empty(botCallbackSecret) ?  : "
        "@Microsoft.KeyVault(SecretUri=${keyVault.outputs.botCallbackKeyVaultUri})"
    )
    declared = parameters(MAIN)
    assert declared["botCallbackHosts"]["default"] == ""
    assert declared["botCallbackSecret"]["default"] == ""
    assert decorator(declared["botCallbackSecret"], "secure")
    assert modules()["keyVault"].body["params"]["botCallbackSecret"] == "botCallbackSecret"
    secret = key_vault_secret("botCallbackSecretResource")
    assert secret.condition == "not(empty(botCallbackSecret))"
    # checkov cannot see into a conditional resource (its two suppressions say so): asserted here.
    assert props(secret)["value"] == "botCallbackSecret"
    assert props(secret)["contentType"] == "text/plain; format=standard-webhooks"
    assert "exp" in props(secret)["attributes"]
    uri = parse(module_path("keyvault"))["outputs"]["botCallbackKeyVaultUri"]["value"]
    assert (
        render(uri)
        == "empty(botCallbackSecret) ?  : ${vault.properties.vaultUri}secrets/psc-bot-callback-secret"
    )
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    for param, setting in (
        ("botCallbackHosts", "PSC_BOT_CALLBACK_HOSTS"),
        ("botCallbackSecret", "PSC_BOT_CALLBACK_SECRET"),
    ):
        assert azd[param]["value"] == f"${{{setting}}}"
        for name in ("main.dev.bicepparam", "main.prod.bicepparam"):
            assert bicepparam(name)[param] == f"readEnvironmentVariable('{setting}', '')", name


# --- data services: keys off, TLS 1.2, RBAC ----------------------------------------------------


def test_cosmos_db_allows_entra_only_with_continuous_backup() -> None:
    account = resource(module_path("cosmos"), "Microsoft.DocumentDB/databaseAccounts")
    p = props(account)
    assert p["disableLocalAuth"] is True
    assert p["disableKeyBasedMetadataWriteAccess"] is True
    assert p["minimalTlsVersion"] == "Tls12"
    assert p["backupPolicy"]["type"] == "Continuous"
    assert render(p["capabilities"]) == "throughputMode == serverless ? [{name: EnableServerless}] : []"
    cosmos_params = parameters(module_path("cosmos"))
    assert cosmos_params["throughputMode"]["default"] == "serverless"
    assert parameters(MAIN)["cosmosThroughputMode"]["default"] == "serverless"
    database = resource(module_path("cosmos"), "Microsoft.DocumentDB/databaseAccounts/sqlDatabases")
    assert "autoscaleMaxThroughput" in render(props(database)["options"])


def test_service_bus_disables_sas_keys_and_old_tls() -> None:
    namespace = resource(module_path("servicebus"), "Microsoft.ServiceBus/namespaces")
    p = props(namespace)
    assert p["disableLocalAuth"] is True
    assert p["minimumTlsVersion"] == "1.2"
    assert parameters(module_path("servicebus"))["skuName"]["default"] == "Standard"
    assert decorator(parameters(MAIN)["serviceBusSku"], "allowed") == ["Standard", "Premium"]
    # Private endpoints exist on Premium only.
    assert render(variable(MAIN, "effectiveServiceBusSku")) == f"{PRIVATE} ? Premium : serviceBusSku"
    assert not resources(module_path("servicebus"), "Microsoft.ServiceBus/namespaces/AuthorizationRules")


def test_storage_refuses_shared_keys_and_public_blobs() -> None:
    account = resource(module_path("storage"), "Microsoft.Storage/storageAccounts")
    p = props(account)
    assert p["allowSharedKeyAccess"] is False
    assert p["allowBlobPublicAccess"] is False
    assert p["minimumTlsVersion"] == "TLS1_2"
    assert p["supportsHttpsTrafficOnly"] is True
    assert p["defaultToOAuthAuthentication"] is True
    containers = resources(
        module_path("storage"), "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert {render(c.body["name"]) for c in containers} == {
        "deploymentContainerName",
        "archiveContainerName",
        "transcriptsContainerName",
        "exportsContainerName",
    }
    assert parameters(module_path("storage"))["archiveContainerName"]["default"] == "archive"
    assert parameters(module_path("storage"))["transcriptsContainerName"]["default"] == "transcripts"
    assert parameters(module_path("storage"))["exportsContainerName"]["default"] == "exports"
    assert all(props(c)["publicAccess"] == "None" for c in containers)


def test_key_vault_uses_rbac_with_purge_protection_on_in_production_and_absent_in_dev() -> None:
    vault = resource(module_path("keyvault"), "Microsoft.KeyVault/vaults")
    merged = vault.body["properties"]["function"]
    assert merged["type"] == "union"
    p, optional = merged["parameters"]["arg_1"], merged["parameters"]["arg_2"]
    assert p["enableRbacAuthorization"] is True
    assert p["enableSoftDelete"] is True
    assert "accessPolicies" not in p
    # ARM refuses `enablePurgeProtection: false`, and once on it cannot be turned off: the property
    # is there only when the parameter is on, and absent otherwise (so azd down --purge works).
    assert "enablePurgeProtection" not in p
    assert render(optional) == "enablePurgeProtection ? {enablePurgeProtection: true} : {}"
    assert parameters(module_path("keyvault"))["enablePurgeProtection"]["default"] is True
    assert parameters(MAIN)["keyVaultPurgeProtection"]["default"] is True
    assert modules()["keyVault"].body["params"]["enablePurgeProtection"] == "keyVaultPurgeProtection"
    assert bicepparam("main.prod.bicepparam")["keyVaultPurgeProtection"] == "true"
    assert bicepparam("main.dev.bicepparam")["keyVaultPurgeProtection"] == "false"
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["keyVaultPurgeProtection"]["value"] == "${PSC_KEY_VAULT_PURGE_PROTECTION=false}"


def test_application_insights_accepts_entra_authenticated_telemetry_only() -> None:
    component = resource(module_path("monitoring"), "Microsoft.Insights/components")
    assert props(component)["DisableLocalAuth"] is True
    assert render(props(component)["WorkspaceResourceId"]) == "workspace.id"


def role_ids(path: Path) -> set[str]:
    return {g.lower() for g in GUID.findall(path.read_text())}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (
            "storage",
            # The reader is Power BI's, on the exports container only (when a principal is given).
            {
                "Storage Blob Data Owner",
                "Storage Queue Data Contributor",
                "Storage Table Data Contributor",
                "Storage Blob Data Reader",
            },
        ),
        (
            "servicebus",
            {
                "Azure Service Bus Data Sender",
                "Azure Service Bus Data Receiver",
                "Azure Service Bus Data Owner",
            },
        ),
        ("keyvault", {"Key Vault Secrets User", "Key Vault Secrets Officer"}),
        ("monitoring", {"Monitoring Metrics Publisher"}),
        ("cosmos", {"Cosmos DB Built-in Data Contributor"}),
        ("webpubsub", {"Web PubSub Service Owner"}),
        # The app sends through ACS; the Event Grid system topic sends reports to their queue.
        ("communication", {"Communication and Email Service Owner", "Azure Service Bus Data Sender"}),
    ],
)
def test_the_identity_gets_exactly_the_built_in_roles_it_needs(module: str, expected: set[str]) -> None:
    ids = role_ids(module_path(module))
    assert ids <= set(KNOWN_ROLES), f"unknown role ids in {module}: {ids - set(KNOWN_ROLES)}"
    assert {KNOWN_ROLES[i] for i in ids} == expected
    path = module_path(module)
    assignments = resources(path, "Microsoft.Authorization/roleAssignments") + resources(
        path, "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"
    )
    assert assignments
    variables = parse(path).get("variables", {})
    granted = [render(a.body) + render(variables.get(str(a.loop_over), {}).get("value")) for a in assignments]
    assert any("appPrincipalId" in text for text in granted)
    # Every module hands the app identity's principal id in.
    assert render(main_params_for(module)["appPrincipalId"]) == "identity.outputs.principalId"


def test_only_the_optional_ops_principal_gets_service_bus_data_owner() -> None:
    """`python -m ops queues` needs the Manage right; the app identity must never hold it."""
    path = module_path("servicebus")
    assert render(variable(path, "dataOwner")) == "090c5cfd-751d-490a-894a-3ce6f1109419"
    owners = [
        a
        for a in resources(path, "Microsoft.Authorization/roleAssignments")
        if "dataOwner" in render(a.body["properties"]["roleDefinitionId"])
    ]
    assert len(owners) == 1
    (owner,) = owners
    assert owner.condition == "not(empty(opsPrincipalId))"
    assert owner.body["properties"]["principalId"] == "opsPrincipalId"
    assert owner.body["properties"]["principalType"] == "opsPrincipalType"
    assert render(owner.body["scope"]) == "namespace"
    assert "dataOwner" not in render(variable(path, "roleDefinitionIds"))
    assert parameters(MAIN)["opsPrincipalId"]["default"] == ""
    for name in ("opsPrincipalId", "opsPrincipalType"):
        assert main_params_for("servicebus")[name] == name


def test_cosmos_data_role_is_data_plane_rbac_on_the_account() -> None:
    assignment = resource(module_path("cosmos"), "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments")
    assert (
        render(props(assignment)["roleDefinitionId"])
        == "${account.id}/sqlRoleDefinitions/${dataContributorRoleId}"
    )
    assert render(props(assignment)["scope"]) == "account.id"
    assert render(variable(module_path("cosmos"), "dataPrincipals")).startswith("empty(developerPrincipalId)")


def test_no_infra_file_holds_or_fetches_a_key() -> None:
    # APPLICATIONINSIGHTS_CONNECTION_STRING is allowed: it names an ingestion endpoint and an
    # instrumentation key that grants nothing once the component's local auth is disabled.
    forbidden = re.compile(
        r"AccountKey|SharedAccessKey|listKeys\(|listConnectionStrings\(|primaryKey|secondaryKey"
        r"|primaryMasterKey|listAccountSas|listServiceSas|connectionString",
        re.IGNORECASE,
    )
    allowed = re.compile(
        r"APPLICATIONINSIGHTS_CONNECTION_STRING|applicationInsightsConnectionString"
        r"|output connectionString string = appInsights\.properties\.ConnectionString"
        r"|monitoring\.outputs\.connectionString|Application Insights connection string"
    )
    for path in [*INFRA.rglob("*.bicep"), *INFRA.rglob("*.bicepparam"), *INFRA.rglob("*.json")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if forbidden.search(allowed.sub("", line)):
                pytest.fail(f"{path.relative_to(INFRA)}:{number}: {line.strip()}")


# --- diagnostics and private networking --------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("function-app", "functionApp"),
        ("cosmos", "account"),
        ("servicebus", "namespace"),
        ("storage", "blobService"),
        ("storage", "storage"),
        ("keyvault", "vault"),
        ("webpubsub", "webPubSub"),
        ("communication", "communication"),
        ("communication", "systemTopic"),
    ],
)
def test_every_resource_sends_diagnostics_to_log_analytics(module: str, target: str) -> None:
    settings = resources(module_path(module), "Microsoft.Insights/diagnosticSettings")
    scoped = [s for s in settings if s.body.get("scope") == target]
    assert scoped, f"{module}: no diagnostic setting on {target}"
    assert all(props(s)["workspaceId"] == "workspaceId" for s in scoped)
    assert render(main_params_for(module)["workspaceId"]) == "monitoring.outputs.workspaceId"


@pytest.mark.parametrize(
    ("module", "type_", "disabled"),
    [
        ("cosmos", "Microsoft.DocumentDB/databaseAccounts", "Disabled"),
        ("servicebus", "Microsoft.ServiceBus/namespaces", "Disabled"),
        ("storage", "Microsoft.Storage/storageAccounts", "Disabled"),
        ("keyvault", "Microsoft.KeyVault/vaults", "Disabled"),
    ],
)
def test_private_networking_turns_off_public_access(module: str, type_: str, disabled: str) -> None:
    res = resource(module_path(module), type_)
    assert render(props(res)["publicNetworkAccess"]) == f"{PRIVATE} ? {disabled} : Enabled"
    assert parameters(module_path(module))[PRIVATE]["default"] is False
    assert main_params_for(module)[PRIVATE] == PRIVATE


def test_private_endpoints_cover_every_data_service_and_the_app_joins_the_vnet() -> None:
    mods = modules()
    assert mods["network"].condition == PRIVATE
    assert mods["endpoints"].loop_over == f"{PRIVATE} ? privateEndpoints : []"
    endpoints = variable(MAIN, "privateEndpoints")
    assert {e["groupId"] for e in endpoints} == {
        "blob",
        "queue",
        "table",
        "Sql",
        "namespace",
        "vault",
        "webpubsub",
    }
    # A loop's array must be known when the deployment starts: no module outputs in it.
    assert "outputs" not in json.dumps(endpoints)
    services = variable(MAIN, "privateEndpointServices")
    assert {e["service"] for e in endpoints} == set(services)
    assert (
        render(mods["endpoints"].body["params"]["serviceResourceId"]) == "privateEndpointServices[pe.service]"
    )
    assert render(mods["api"].body["params"]["virtualNetworkSubnetId"]) == (
        f"{PRIVATE} ? network.outputs.appSubnetId : "
    )
    subnets = props(resource(module_path("network"), "Microsoft.Network/virtualNetworks"))["subnets"]
    app_subnet = next(s for s in subnets if s["name"] == "app")
    assert (
        app_subnet["properties"]["delegations"][0]["properties"]["serviceName"]
        == "Microsoft.App/environments"
    )
    assert parameters(MAIN)[PRIVATE]["default"] is False


def bicepparam(name: str) -> dict[str, str]:
    text = (INFRA / name).read_text()
    assert re.search(r"^using 'main\.bicep'$", text, re.M)
    return dict(re.findall(r"^param (\w+) = (.+)$", text, re.M))


@pytest.mark.parametrize("name", ["main.dev.bicepparam", "main.prod.bicepparam"])
def test_parameter_files_set_every_required_parameter_and_no_secret(name: str) -> None:
    values = bicepparam(name)
    declared = parameters(MAIN)
    assert set(values) <= set(declared)
    required = {n for n, p in declared.items() if p.get("default") is None}
    assert required <= set(values)
    assert values["webhookSecret"] == "readEnvironmentVariable('PSC_WEBHOOK_SECRET')"


def test_dev_is_public_and_serverless_prod_is_private_and_premium() -> None:
    dev, prod = bicepparam("main.dev.bicepparam"), bicepparam("main.prod.bicepparam")
    assert dev[PRIVATE] == "false"
    assert prod[PRIVATE] == "true"
    assert dev["cosmosThroughputMode"] == "'serverless'"
    assert prod["serviceBusSku"] == "'Premium'"


def test_azd_parameters_file_names_only_main_parameters() -> None:
    data = json.loads((INFRA / "main.parameters.json").read_text())
    assert set(data["parameters"]) <= set(parameters(MAIN))
    assert data["parameters"]["webhookSecret"]["value"] == "${PSC_WEBHOOK_SECRET}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_loops_iterate_over_values_known_when_the_deployment_starts(path: Path) -> None:
    # BCP178: a resource or module loop cannot depend on outputs or runtime properties.
    declared = parse(path)
    loops = [r for r in resources(path) if r.loop_over] + [
        m for m in (modules(path).values() if declared.get("modules") else []) if m.loop_over
    ]
    for loop in loops:
        over = str(loop.loop_over)
        names = re.findall(r"[A-Za-z_]\w*", over)
        for name in names:
            if name in declared.get("variables", {}):
                over += " " + render(declared["variables"][name]["value"])
        assert ".outputs." not in over, f"{path.name}: {loop.symbol} loops over module outputs"
        assert ".properties." not in over, f"{path.name}: {loop.symbol} loops over runtime properties"


# --- real time: Azure Web PubSub -----------------------------------------------------------------


def test_web_pubsub_exists_entra_only_with_the_apps_hub_and_no_anonymous_client() -> None:
    service = resource(module_path("webpubsub"), "Microsoft.SignalRService/webPubSub")
    p = props(service)
    assert p["disableLocalAuth"] is True  # no access key: tokens come from :generateToken
    assert p["disableAadAuth"] is False
    assert render(service.body["sku"]["name"]) == "skuName"
    assert decorator(parameters(MAIN)["webPubSubSku"], "allowed") == ["Free_F1", "Standard_S1"]
    assert decorator(parameters(module_path("webpubsub"))["skuName"], "allowed") == ["Free_F1", "Standard_S1"]
    # Private endpoints need Standard.
    assert render(variable(MAIN, "effectiveWebPubSubSku")) == f"{PRIVATE} ? Standard_S1 : webPubSubSku"
    assert modules()["webPubSub"].body["params"]["skuName"] == "effectiveWebPubSubSku"
    hub = resource(module_path("webpubsub"), "Microsoft.SignalRService/webPubSub/hubs")
    assert props(hub)["anonymousConnectPolicy"] == "deny"
    assert props(hub)["eventHandlers"] == []
    assert render(variable(MAIN, "webPubSubHub")) == "psc"
    assert modules()["webPubSub"].body["params"]["hubName"] == "webPubSubHub"


def test_the_app_identity_is_web_pubsub_service_owner_on_the_resource() -> None:
    path = module_path("webpubsub")
    assert render(variable(path, "serviceOwner")) == "12cf5a90-567b-43ae-8102-96cf46c7d9b4"
    (app,) = [a for a in resources(path, "Microsoft.Authorization/roleAssignments") if a.condition is None]
    assert render(app.body["scope"]) == "webPubSub"
    assert app.body["properties"]["principalId"] == "appPrincipalId"
    assert app.body["properties"]["principalType"] == "ServicePrincipal"
    assert "serviceOwner" in render(app.body["properties"]["roleDefinitionId"])


def test_the_app_reaches_web_pubsub_by_its_endpoint_through_the_identity() -> None:
    s = app_settings()
    assert s["PSC_REALTIME"] == "webpubsub"
    assert s["PSC_WEBPUBSUB_ENDPOINT"] == "webPubSub.outputs.endpoint"
    assert s["PSC_WEBPUBSUB_HUB"] == "webPubSub.outputs.hubName"
    outputs = parse(module_path("webpubsub"))["outputs"]
    assert render(outputs["endpoint"]["value"]) == "https://${webPubSub.properties.hostName}"
    assert "PSC_REALTIME_KEY" not in s


def test_browsers_connect_publicly_while_the_rest_api_is_private_with_private_networking() -> None:
    p = props(resource(module_path("webpubsub"), "Microsoft.SignalRService/webPubSub"))
    assert p["publicNetworkAccess"] == "Enabled"  # clients are patients' and agents' browsers
    acl = p["networkACLs"]
    assert render(acl["defaultAction"]) == f"{PRIVATE} ? Allow : Deny"
    assert render(acl["publicNetwork"]["allow"]) == (
        f"{PRIVATE} ? [ClientConnection] : [ClientConnection, RESTAPI]"
    )
    assert render(acl["publicNetwork"]["deny"]) == (
        f"{PRIVATE} ? [RESTAPI, ServerConnection, Trace] : [ServerConnection, Trace]"
    )
    assert main_params_for("webpubsub")[PRIVATE] == PRIVATE
    zones = variable(module_path("network"), "privateDnsZones")
    assert zones["webPubSub"] == "privatelink.webpubsub.azure.com"
    endpoint = next(e for e in variable(MAIN, "privateEndpoints") if e["key"] == "webpubsub")
    assert endpoint == {
        "key": "webpubsub",
        "service": "webPubSub",
        "groupId": "webpubsub",
        "zone": "webPubSub",
    }


def test_dev_uses_the_free_tier_and_prod_standard() -> None:
    dev, prod = bicepparam("main.dev.bicepparam"), bicepparam("main.prod.bicepparam")
    assert dev["webPubSubSku"] == "'Free_F1'"
    assert prod["webPubSubSku"] == "'Standard_S1'"


def test_the_link_signing_key_is_a_key_vault_reference_with_an_expiry_never_a_value() -> None:
    s = app_settings()
    assert s["PSC_LINK_SIGNING_KEY"] == (
        "empty(linkSigningKey) ?  : @Microsoft.KeyVault(SecretUri=${keyVault.outputs.linkSigningKeyVaultUri})"
    )
    assert decorator(parameters(MAIN)["linkSigningKey"], "secure")
    secret = key_vault_secret("linkSigningKeyResource")
    assert props(secret)["value"] == "linkSigningKey"
    assert "exp" in props(secret)["attributes"]
