"""`python -m devhost`: settings loading, start-up failures and the `token` command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jwt
import pytest

from devhost.cli import main, prepare_environment
from devhost.config_files import read_host_json
from devhost.errors import StartError
from shared.auth.dev_tokens import DEV_AUDIENCE, DEV_ISSUER

SECRET = "a-dev-secret-that-is-long-enough-0123456789"
pytestmark = pytest.mark.usefixtures("restore_environ")


def write_settings(
    root: Path, values: dict[str, str], name: str = "local.settings.json", **extra: object
) -> Path:
    path = root / name
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values, **extra}), encoding="utf-8")
    return path


def dev_values(**overrides: str) -> dict[str, str]:
    return {"PSC_AUTH_MODE": "dev", "PSC_DEV_JWT_SECRET": SECRET, "PSC_ENTRA_TENANT_ID": "", **overrides}


def clear(*names: str) -> None:
    for name in names:
        os.environ.pop(name, None)


def test_local_settings_fill_the_environment_but_never_override_it(tmp_path: Path) -> None:
    clear("PSC_STORE", "PSC_DATA_DIR")
    os.environ["PSC_BUS"] = "from-shell"
    write_settings(tmp_path, {"PSC_STORE": "embedded", "PSC_BUS": "from-file", "PSC_DATA_DIR": "x"})
    local = prepare_environment(None, None, root=tmp_path)
    assert local.path == tmp_path / "local.settings.json"
    assert os.environ["PSC_STORE"] == "embedded"
    assert os.environ["PSC_BUS"] == "from-shell"


def test_the_committed_sample_is_used_when_there_is_no_local_settings_file(tmp_path: Path) -> None:
    clear("PSC_COLOUR")
    write_settings(tmp_path, {"PSC_COLOUR": "sample"}, name="local.settings.sample.json")
    local = prepare_environment(None, None, root=tmp_path)
    assert local.path == tmp_path / "local.settings.sample.json"
    assert os.environ["PSC_COLOUR"] == "sample"


def test_data_dir_flag_sets_psc_data_dir_over_file_and_environment(tmp_path: Path) -> None:
    os.environ["PSC_DATA_DIR"] = "from-shell"
    write_settings(tmp_path, {"PSC_DATA_DIR": "from-file"})
    prepare_environment(None, tmp_path / "data", root=tmp_path)
    assert os.environ["PSC_DATA_DIR"] == str(tmp_path / "data")


def test_host_json_sets_route_prefix_concurrency_and_lock_renewal(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "extensions": {
                    "http": {"routePrefix": ""},
                    "serviceBus": {"maxConcurrentCalls": 4, "maxAutoLockRenewalDuration": "00:02:30"},
                },
            }
        )
    )
    config = read_host_json(tmp_path / "host.json")
    assert config.route_prefix == ""
    assert config.max_concurrent_calls == 4
    assert config.max_auto_lock_renewal.total_seconds() == 150
    assert read_host_json(tmp_path / "missing.json").route_prefix == "api"


def test_a_bad_setting_stops_the_start_with_exit_code_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear("PSC_AUTH_MODE", "PSC_DEV_JWT_SECRET")
    write_settings(tmp_path, dev_values(PSC_DEV_JWT_SECRET="short"))
    assert main(["--data-dir", str(tmp_path / "data")], root=tmp_path) == 2
    assert "PSC_DEV_JWT_SECRET" in capsys.readouterr().err


def test_core_tools_host_cors_is_refused_in_favour_of_psc_cors_origins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear("PSC_AUTH_MODE", "PSC_DEV_JWT_SECRET")
    write_settings(tmp_path, dev_values(), Host={"CORS": "*"})
    assert main(["--data-dir", str(tmp_path / "data")], root=tmp_path) == 2
    assert "PSC_CORS_ORIGINS" in capsys.readouterr().err


def test_a_missing_function_app_module_stops_the_start_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear("PSC_AUTH_MODE", "PSC_DEV_JWT_SECRET")
    write_settings(tmp_path, dev_values())
    assert main(["--app", "no_such_module_here:app"], root=tmp_path) == 2
    assert "no_such_module_here" in capsys.readouterr().err


def test_an_unsupported_binding_stops_the_start_naming_the_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear("PSC_AUTH_MODE", "PSC_DEV_JWT_SECRET")
    write_settings(tmp_path, dev_values())
    (tmp_path / "blob_app_for_devhost_test.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.blob_trigger(arg_name='blob', path='in/{name}', connection='AzureWebJobsStorage')\n"
        "def on_blob(blob: func.InputStream) -> None: ...\n"
        "@app.route(route='x')\n"
        "@app.queue_output(arg_name='out', queue_name='q', connection='AzureWebJobsStorage')\n"
        "def with_output(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse: ...\n"
    )
    assert main(["--app", "blob_app_for_devhost_test"], root=tmp_path) == 2
    err = capsys.readouterr().err
    assert "function on_blob: trigger 'blobTrigger' is not supported" in err
    assert "function with_output: binding 'queue'" in err


def test_token_prints_a_dev_token_that_decodes_with_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear("PSC_AUTH_MODE", "PSC_DEV_JWT_SECRET")
    write_settings(tmp_path, dev_values())
    code = main(
        [
            "token",
            "--sub",
            "agent-7",
            "--role",
            "Agent",
            "--role",
            "ClinicalUser",
            "--name",
            "Agent Seven",
            "--ttl",
            "600",
        ],
        root=tmp_path,
    )
    assert code == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=DEV_AUDIENCE, issuer=DEV_ISSUER)
    assert claims["sub"] == "agent-7"
    assert claims["roles"] == ["Agent", "ClinicalUser"]
    assert claims["name"] == "Agent Seven"
    assert claims["exp"] - claims["iat"] == 600
    assert "patient_id" not in claims


def test_token_for_a_patient_carries_the_patient_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear("PSC_AUTH_MODE", "PSC_DEV_JWT_SECRET")
    write_settings(tmp_path, dev_values())
    assert main(["token", "--sub", "u-1", "--role", "Patient", "--patient-id", "p-1"], root=tmp_path) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=DEV_AUDIENCE)
    assert claims["patient_id"] == "p-1"
    assert claims["roles"] == ["Patient"]


def test_token_outside_dev_mode_exits_2_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear("PSC_AUTH_MODE", "PSC_DEV_JWT_SECRET")
    write_settings(tmp_path, {"PSC_AUTH_MODE": "entra"})
    assert main(["token", "--sub", "u-1", "--role", "Agent"], root=tmp_path) == 2
    captured = capsys.readouterr()
    assert "PSC_AUTH_MODE=dev" in captured.err
    assert captured.out == ""


def test_an_explicit_settings_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StartError, match="does not exist"):
        prepare_environment(tmp_path / "nope.json", None, root=tmp_path)
