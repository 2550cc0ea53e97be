"""The dashboard's page and files as the app serves them, without a browser: only the files the
dashboard ships, with their types, caching and a strict Content-Security-Policy; the sign-in
configuration; nothing that loads from another host; the vendored libraries as pinned; and all
of it in the deploy package. (tests/browser/ runs the page in Chromium.)"""

from __future__ import annotations

import hashlib
import re
import subprocess
import zipfile
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from shared.runtime import Runtime, build_runtime, use_runtime
from shared.web.dashboard import site
from tests.conftest import invoke, make_settings, token

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "shared" / "web" / "dashboard" / "assets"
VENDOR = ASSETS / "vendor"


def directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in policy.split(";"))}


async def asset(name: str) -> Any:
    return await invoke(
        "dashboard_asset", url=f"http://localhost/api/dashboard/assets/{name}", route_params={"asset": name}
    )


async def test_the_page_is_served_to_anyone_with_a_strict_policy(runtime: Runtime) -> None:
    answer = await invoke("dashboard_page", url="http://localhost/api/dashboard")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html"  # the host adds `; charset=utf-8`
    assert answer.body == (ASSETS / "index.html").read_bytes()  # the page holds no data
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    policy = directives(answer.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval
    assert policy["style-src"] == ["'self'"]
    # The dev host's hub (the embedded one by default), and no other host.
    assert policy["connect-src"] == ["'self'", f"ws://127.0.0.1:{runtime.settings.realtime_port}"]
    assert policy["frame-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    # A token is not needed, and a stranger's is not looked at.
    assert (await invoke("dashboard_page", bearer="not-a-token")).status == 200
    assert (await invoke("dashboard_page", bearer=token("Patient", patient_id="p-1"))).status == 200


@pytest.mark.parametrize(
    ("name", "content_type", "cache"),
    [
        ("dashboard.js", "text/javascript", "public, max-age=300"),
        ("dashboard.css", "text/css", "public, max-age=300"),
        ("uPlot-1.6.32.iife.min.js", "text/javascript", "public, max-age=31536000, immutable"),
        ("uPlot-1.6.32.min.css", "text/css", "public, max-age=31536000, immutable"),
        ("msal-browser-5.30.0.min.js", "text/javascript", "public, max-age=31536000, immutable"),
        ("redirect.html", "text/html", "no-store"),
    ],
)
async def test_each_file_comes_with_its_type_and_how_long_to_keep_it(
    runtime: Runtime, name: str, content_type: str, cache: str
) -> None:
    answer = await asset(name)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == content_type
    assert answer.headers["Cache-Control"] == cache
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.body == next(ASSETS.rglob(name)).read_bytes()


async def test_the_redirect_page_may_be_framed_by_the_dashboard_only(runtime: Runtime) -> None:
    """MSAL renews tokens in a hidden frame of this page; nobody else may frame it."""
    policy = directives((await asset("redirect.html")).headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'self'"]


@pytest.mark.parametrize(
    "name",
    ["index.html", "README.md", "LICENSE.uPlot.txt", "site.py", "__init__.py", "nope.js", "DASHBOARD.JS"],
)
async def test_only_the_files_the_page_loads_are_served(runtime: Runtime, name: str) -> None:
    answer = await asset(name)
    assert answer.status == 404
    assert answer.json["type"] == "urn:psc:problem:not-found"


@pytest.mark.parametrize("name", ["..", ".", "vendor/uPlot-1.6.32.min.css", "a\\b", "x" * 101])
async def test_a_name_that_is_not_a_file_name_is_refused(runtime: Runtime, name: str) -> None:
    answer = await asset(name)
    assert answer.status == 400
    assert answer.json["errors"][0]["field"] == "asset"


def test_every_file_name_is_unique_and_every_served_type_is_known() -> None:
    names = [p.name for p in ASSETS.rglob("*") if p.suffix in site.CONTENT_TYPES]
    assert len(names) == len(set(names))
    assert set(site.assets()) == set(names)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self.style_element = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.style_element |= tag == "style"

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1][0] == "script" and data.strip():
            self.inline_script = True


@pytest.mark.parametrize("page", ["index.html", "redirect.html"])
def test_the_markup_has_no_inline_code_and_loads_only_our_own_files(page: str) -> None:
    markup = _Markup()
    markup.feed((ASSETS / page).read_text())
    assert not markup.inline_script
    assert not markup.style_element
    handlers = [(tag, name) for tag, attrs in markup.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    assert not [tag for tag, attrs in markup.tags if "style" in attrs]
    loaded = [
        attrs.get("src") or attrs.get("href") for tag, attrs in markup.tags if tag in ("script", "link")
    ]
    assert loaded
    for url in loaded:
        assert url == "data:," or url.startswith("/api/dashboard/assets/"), url
        if url.startswith("/api/"):
            assert site.asset(url.rsplit("/", 1)[1]) is not None, url


def test_our_scripts_name_no_other_host_and_import_only_our_files() -> None:
    for script in ASSETS.glob("*.js"):
        text = script.read_text()
        assert not re.search(r"https?://", text), script.name
        for imported in re.findall(r'^import .* from "\./([^"]+)";$', text, re.M):
            assert (ASSETS / imported).is_file(), (script.name, imported)
        for asset_url in re.findall(r"/api/dashboard/assets/([\w.-]+)", text):
            assert site.asset(asset_url) is not None, (script.name, asset_url)


async def test_config_says_dev_mode_asks_for_a_dev_token(runtime: Runtime) -> None:
    answer = await invoke("dashboard_config", url="http://localhost/api/dashboard/config.json")
    assert answer.status == 200
    assert answer.json == {"authMode": "dev"}
    assert answer.headers["Cache-Control"] == "no-store"


TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"


async def _entra_runtime(tmp_path: Path, **overrides: str) -> Runtime:
    settings = make_settings(
        tmp_path / "data",
        PSC_AUTH_MODE="entra",
        PSC_ENTRA_TENANT_ID=TENANT,
        PSC_ENTRA_CLIENT_ID=CLIENT,
        **overrides,
    )
    return await build_runtime(settings)


async def test_with_entra_the_config_names_the_client_tenant_and_scope_and_the_policy_allows_the_login_host(
    tmp_path: Path,
) -> None:
    runtime = await _entra_runtime(tmp_path)
    try:
        with use_runtime(runtime):
            config = (await invoke("dashboard_config")).json
            page = await invoke("dashboard_page")
    finally:
        await runtime.close()
    assert config == {
        "authMode": "entra",
        "entra": {
            "clientId": CLIENT,
            "authority": f"https://login.microsoftonline.com/{TENANT}",
            "scopes": [f"api://{CLIENT}/access_as_user"],
        },
    }
    policy = directives(page.headers["Content-Security-Policy"])
    login = "https://login.microsoftonline.com"
    assert login in policy["connect-src"]
    assert policy["frame-src"] == [login]
    assert policy["form-action"] == ["'self'", login]


async def test_the_scope_follows_the_app_id_uri_and_the_authority_a_sovereign_cloud(tmp_path: Path) -> None:
    runtime = await _entra_runtime(
        tmp_path,
        PSC_ENTRA_AUDIENCE="api://psc.example.org/",
        PSC_ENTRA_AUTHORITY="https://login.microsoftonline.us",
    )
    try:
        with use_runtime(runtime):
            config = (await invoke("dashboard_config")).json
            page = await invoke("dashboard_page")
    finally:
        await runtime.close()
    assert config["entra"]["scopes"] == ["api://psc.example.org/access_as_user"]
    assert config["entra"]["authority"] == f"https://login.microsoftonline.us/{TENANT}"
    assert (
        "https://login.microsoftonline.us"
        in directives(page.headers["Content-Security-Policy"])["connect-src"]
    )


def test_with_web_pubsub_the_page_may_connect_to_its_wss_origin_only(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        PSC_REALTIME="webpubsub",
        PSC_WEBPUBSUB_ENDPOINT="https://psc-rt.webpubsub.azure.com",
    )
    policy = directives(site.content_security_policy(settings))
    assert policy["connect-src"] == ["'self'", "wss://psc-rt.webpubsub.azure.com"]


def _vendored() -> dict[str, str]:
    """file name → sha256, from the table in vendor/README.md."""
    table = (VENDOR / "README.md").read_text()
    return dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", table, re.M))


def test_the_vendored_files_are_the_pinned_ones() -> None:
    listed = _vendored()
    assert {p.name for p in VENDOR.iterdir() if p.name != "README.md"} == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_the_dashboard_ships_in_the_deploy_package(tmp_path: Path) -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in ASSETS.rglob("*"):
        relative = path.relative_to(ROOT).as_posix()
        parts = relative.split("/")
        assert not any(fnmatch(part, pattern) for part in parts for pattern in ignored), relative
    # scripts/deploy.sh --package-only, on a copy (as tests/infra/test_pipeline.py runs it).
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
    packaged = set(zipfile.ZipFile(tmp_path / "dist" / "api.zip").namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in ASSETS.rglob("*") if p.is_file()}
    assert shipped <= packaged
