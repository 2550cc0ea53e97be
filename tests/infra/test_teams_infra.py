"""Teams consults and knowledge search in Bicep: the API may write team secrets to Key Vault, the
Teams token is a Key Vault reference, and the search container gets its full-text policy."""

from __future__ import annotations

import json

from tests.infra.bicep import (
    INFRA,
    MAIN,
    module_path,
    modules,
    parameters,
    parse,
    render,
    resources,
    variable,
)
from tests.infra.test_templates import app_settings, bicepparam, props


def test_the_app_writes_team_secrets_to_key_vault_with_secrets_officer() -> None:
    s = app_settings()
    assert s["PSC_SECRETS"] == "keyvault"
    assert s["PSC_KEY_VAULT_URI"] == "keyVault.outputs.vaultUri"
    path = module_path("keyvault")
    assert render(variable(path, "secretsOfficer")) == "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
    officers = [
        a
        for a in resources(path, "Microsoft.Authorization/roleAssignments")
        if "secretsOfficer" in render(a.body["properties"]["roleDefinitionId"])
    ]
    assert len(officers) == 1
    assert render(officers[0].body["properties"]["principalId"]) == "appPrincipalId"


def test_the_teams_outgoing_token_is_a_key_vault_reference_when_given() -> None:
    s = app_settings()
    assert s["PSC_TEAMS_OUTGOING_TOKEN"] == (
        "empty(teamsOutgoingToken) ?  : "
        "@Microsoft.KeyVault(SecretUri=${keyVault.outputs.teamsTokenKeyVaultUri})"
    )
    assert s["PSC_TEAMS_WORKFLOW_HOSTS"] == "teamsWorkflowHosts"
    declared = parameters(MAIN)
    assert declared["teamsOutgoingToken"]["default"] == ""
    from tests.infra.bicep import decorator

    assert decorator(declared["teamsOutgoingToken"], "secure")
    assert modules()["keyVault"].body["params"]["teamsOutgoingToken"] == "teamsOutgoingToken"
    token = next(
        r
        for r in resources(module_path("keyvault"), "Microsoft.KeyVault/vaults/secrets")
        if r.symbol == "teamsTokenResource"
    )
    assert token.condition == "not(empty(teamsOutgoingToken))"
    assert props(token)["value"] == "teamsOutgoingToken"
    assert props(token)["contentType"] == "text/plain; format=teams-outgoing-webhook-token"
    assert "exp" in props(token)["attributes"]
    outputs = parse(module_path("keyvault"))["outputs"]
    assert render(outputs["teamsTokenKeyVaultUri"]["value"]) == (
        "empty(teamsOutgoingToken) ?  : ${vault.properties.vaultUri}secrets/psc-teams-outgoing-token"
    )
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    for param, setting in (
        ("teamsOutgoingToken", "PSC_TEAMS_OUTGOING_TOKEN"),
        ("teamsWorkflowHosts", "PSC_TEAMS_WORKFLOW_HOSTS"),
    ):
        assert azd[param]["value"] == f"${{{setting}}}"
        for name in ("main.dev.bicepparam", "main.prod.bicepparam"):
            assert bicepparam(name)[param] == f"readEnvironmentVariable('{setting}', '')", name


def test_the_search_container_gets_a_full_text_policy_and_index_from_the_catalog() -> None:
    catalog = json.loads((INFRA / "catalog.json").read_text())
    search = next(c for c in catalog["containers"] if c["name"] == "search")
    assert [p["path"] for p in search["fullTextPaths"]] == ["/textEn", "/textEs", "/textPl", "/text"]
    assert {p["language"] for p in search["fullTextPaths"]} == {"en-US"}  # GA analysers only
    assert {p["path"]: p["language"] for p in search["fullTextPathsPreview"]}["/textEs"] == "es-ES"
    assert search["fullTextIndexes"] == [{"path": p["path"]} for p in search["fullTextPaths"]]
    containers = render(
        resources(module_path("cosmos"), "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")[
            0
        ].body
    )
    assert "fullTextPreviewLanguages ? container.fullTextPathsPreview : container.fullTextPaths" in containers
    assert "fullTextIndexes: container.fullTextIndexes" in containers
    assert parameters(MAIN)["cosmosFullTextPreviewLanguages"]["default"] is False
    assert (
        render(modules()["cosmos"].body["params"]["fullTextPreviewLanguages"])
        == "cosmosFullTextPreviewLanguages"
    )
