"""azd wiring, the GitHub workflows and the deploy script say what the brief promises."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

from tests.infra.bicep import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def test_azd_has_one_python_function_service_built_from_the_repo_root() -> None:
    text = (ROOT / "azure.yaml").read_text()
    services = text.split("services:", 1)[1]
    assert re.search(r"^  api:\n    project: \.\n    language: python\n    host: function$", services, re.M)
    assert re.search(r"^  provider: bicep\n  path: infra\n  module: main$", text, re.M)


def test_ci_runs_the_shared_check_script_on_python_3_11_and_node_20() -> None:
    text = (WORKFLOWS / "ci.yml").read_text()
    assert "actions/setup-python@v5" in text
    assert 'python-version: "3.11"' in text
    assert "actions/setup-node@v4" in text
    assert 'node-version: "20"' in text
    assert "run: bash .ci/run" in text
    assert "workflow_call:" in text


def test_deploy_uses_oidc_what_if_before_create_and_flex_deployment() -> None:
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "id-token: write" in text
    assert "azure/login@v2" in text
    assert "client-secret" not in text
    assert "creds:" not in text
    assert text.index("az deployment sub what-if") < text.index("az deployment sub create")
    assert "infra/main.$ENVIRONMENT.bicepparam" in text
    assert "azure/functions-action@v1" in text
    assert "sku: flexconsumption" in text
    assert "workflow_dispatch:" in text
    assert re.search(r"push:\n    branches: \[main\]", text)


def test_deploy_script_is_strict_and_checks_before_it_applies() -> None:
    script = ROOT / "scripts" / "deploy.sh"
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert text.index("az deployment sub what-if") < text.index("az deployment sub create")
    assert "--build-remote" in text
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    usage = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, check=False)
    assert usage.returncode == 0
    assert "Usage: scripts/deploy.sh" in usage.stdout
    bad = subprocess.run(
        ["bash", str(script), "staging", "westeurope"], capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0


def test_the_package_holds_the_app_and_nothing_from_the_workstation(tmp_path: Path) -> None:
    # Run against a copy so parallel test runs never share dist/.
    for name in ("function_app.py", "host.json", "requirements.txt"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    for folder in ("functions", "shared"):
        subprocess.run(["cp", "-R", str(ROOT / folder), str(tmp_path / folder)], check=True)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "deploy.sh").write_bytes((ROOT / "scripts" / "deploy.sh").read_bytes())
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "deploy.sh"), "--package-only"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = zipfile.ZipFile(tmp_path / "dist" / "api.zip").namelist()
    assert {"function_app.py", "host.json", "requirements.txt"} <= set(names)
    assert any(n.startswith("shared/") for n in names)
    assert any(n.startswith("functions/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") or "local.settings" in n for n in names)


def test_deployments_require_the_client_id_and_treat_the_rest_of_identity_as_optional() -> None:
    workflow = (WORKFLOWS / "deploy.yml").read_text()
    required = re.search(r"for name in ([A-Z_ ]+); do", workflow)
    assert required is not None
    assert required.group(1).split() == [
        "AZURE_ENV_NAME",
        "AZURE_LOCATION",
        "PSC_ENTRA_CLIENT_ID",
        "PSC_WEBHOOK_SECRET",
    ]
    for name in (
        "PSC_ENTRA_CLIENT_ID",
        "PSC_ENTRA_AUDIENCE",
        "PSC_PATIENT_AUTHORITY",
        "PSC_PATIENT_TENANT_ID",
    ):
        assert f"{name}: ${{{{ vars.{name} }}}}" in workflow
    script = (ROOT / "scripts" / "deploy.sh").read_text()
    assert ': "${PSC_ENTRA_CLIENT_ID:?' in script
    assert "PSC_ENTRA_AUDIENCE:?" not in script
    assert "PSC_ENTRA_CLIENT_ID" in (ROOT / "azure.yaml").read_text()


def test_the_deploy_script_refuses_a_partial_patient_provider(tmp_path: Path) -> None:
    # A fake az that is signed in, so the script gets as far as its settings checks.
    fake = tmp_path / "az"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "PSC_ENTRA_CLIENT_ID": "client",
        "PSC_WEBHOOK_SECRET": "whsec_x",
        "PSC_PATIENT_AUTHORITY": "https://contoso.ciamlogin.com",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "deploy.sh"), "--what-if-only", "dev", "swedencentral"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 2
    assert "PSC_PATIENT_TENANT_ID" in done.stderr


def test_deployments_pass_bot_callback_settings_and_refuse_hosts_without_the_secret(tmp_path: Path) -> None:
    workflow = (WORKFLOWS / "deploy.yml").read_text()
    assert "PSC_BOT_CALLBACK_HOSTS: ${{ vars.PSC_BOT_CALLBACK_HOSTS }}" in workflow
    assert "PSC_BOT_CALLBACK_SECRET: ${{ secrets.PSC_BOT_CALLBACK_SECRET }}" in workflow
    fake = tmp_path / "az"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "PSC_ENTRA_CLIENT_ID": "client",
        "PSC_WEBHOOK_SECRET": "whsec_x",
        "PSC_BOT_CALLBACK_HOSTS": "bots.example.org",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "deploy.sh"), "--what-if-only", "dev", "swedencentral"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 2
    assert "PSC_BOT_CALLBACK_SECRET" in done.stderr
