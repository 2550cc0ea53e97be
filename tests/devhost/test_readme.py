"""The README's commands work as written: the dev host started as `scripts/run.sh` starts it
(`.venv/bin/python -m devhost --demo`, here on a free port and a fresh data folder), the tokens
exported as its banner says, then every ```bash block of README.md and every `curl` line of the
banner run with bash (`curl` failing on any HTTP error), and the README's Python signing example
runs with `.venv/bin/python`. The README's words about the demo data match the seed."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PYTHON = (
    str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
)
DOCUMENTED_PORT = "127.0.0.1:7071"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fresh_clone_environment() -> dict[str, str]:
    """What a fresh clone runs with: the sample settings (there is no local.settings.json), and
    nothing from this process's PSC_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PSC_", "COSMOS", "ServiceBus"))}
    env.update(json.loads((ROOT / "local.settings.sample.json").read_text())["Values"])
    return env


class Banner:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Dev host listening on"):
                self.ready.set()

    def tokens(self) -> dict[str, str]:
        """`export PATIENT_TOKEN=<patient token above> ...` as the banner says, filled in."""
        printed = dict(re.findall(r"^  ([a-z-]+): (ey[\w.-]+)$", "\n".join(self.lines), re.M))
        advice = next(line for line in self.lines if "export PATIENT_TOKEN=" in line)
        wanted = re.findall(r"(\w+_TOKEN)=<([a-z-]+) token", advice)
        assert wanted, advice
        return {variable: printed[label] for variable, label in wanted}


@pytest.fixture(scope="module")
def dev_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Banner, dict[str, str]]]:
    port = _free_port()
    env = _fresh_clone_environment()
    data_dir = tmp_path_factory.mktemp("readme-devhost")
    process = subprocess.Popen(
        # --realtime-port 0: the hub on any free port (clients learn it from negotiate), so a run
        # beside another dev host never meets its fixed 7072.
        [
            PYTHON,
            "-m",
            "devhost",
            "--demo",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--realtime-port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner = Banner(process)
    try:
        if not banner.ready.wait(60):
            pytest.fail("the dev host did not start:\n" + "\n".join(banner.lines[-30:]))
        yield port, banner, {**env, **banner.tokens()}
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _run_bash(script: str, port: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # `curl -fsS`: an HTTP error fails the command (and `set -e` the script), quietly otherwise.
    script = re.sub(r"(^|[\s;(])curl ", r"\1curl -fsS ", script.replace(DOCUMENTED_PORT, f"127.0.0.1:{port}"))
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_bash_block_of_the_readme_works_as_written(
    dev_host: tuple[int, Banner, dict[str, str]],
) -> None:
    port, _, env = dev_host
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert blocks
    printed = ""
    for block in blocks:
        assert "curl" in block
        result = _run_bash(block, port, env)
        assert result.returncode == 0, f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        printed += result.stdout
    assert '"status": "ok"' in printed  # health answered
    assert '"slots": [{"start": ' in printed  # the slots example finds free slots (not stale dates)
    # The agent's workspace walk-through: a script filled in, the article suggested, the consult
    # answered through the Teams stand-in, the provisional record merged.
    assert "Hello Ben, I am Demo Nurse from Urgent care." in printed
    assert '"id": "chest-pain"' in printed
    assert '"status": "answered"' in printed
    assert '"alreadyMerged": false' in printed
    assert '"openConversations": [{"id": "' in printed  # the summary
    assert '"visibility": "patient", "text": "Chest pain: when to call an ambulance' in printed  # sent
    assert '"visibility": "internal", "text": "Consult ' in printed  # the consult's answer, as a note
    # Live frames: the patient's hub connection heard the agent's message.
    assert "frame: Hello, this is your agent." in printed
    # The patient's answer, relayed by the bot, reaches the agent's conversation.
    assert '"text": "Thanks. Can I take ibuprofen with my new tablets?"' in printed
    # Follow-ups: the reminder is the outbox's last item, and its confirm link confirmed.
    assert "reminder\n" in printed
    assert "your appointment is confirmed" in printed


def test_every_curl_line_of_the_banner_works(dev_host: tuple[int, Banner, dict[str, str]]) -> None:
    port, banner, env = dev_host
    lines = [line.strip() for line in banner.lines if line.strip().startswith("curl ")]
    assert len(lines) >= 6
    result = _run_bash("\n".join(lines), port, env)
    assert result.returncode == 0, f"{lines}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def test_the_readme_signing_example_runs_with_the_venv_python(
    dev_host: tuple[int, Banner, dict[str, str]],
) -> None:
    port, _, env = dev_host
    (example,) = re.findall(r"```python\n(.*?)```", README, re.S)
    code = example.replace(DOCUMENTED_PORT, f"127.0.0.1:{port}")
    result = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().removeprefix("b'").removesuffix("'"))
    assert answer["status"] in ("waiting", "offered")
    assert answer["conversationId"].startswith("c-")


def test_the_readme_describes_the_demo_data_the_seed_makes(
    dev_host: tuple[int, Banner, dict[str, str]],
) -> None:
    from shared.demo import DEMO_AGENTS, DEMO_QUEUES, DEMO_USERS
    from shared.scheduling.api import DEMO_PROVIDERS

    _, banner, _ = dev_host
    queues = re.search(r"(\w+) routing queues\s+\(([^)]*)\)", README)
    assert queues is not None
    assert [q.strip() for q in queues.group(2).split(",")] == list(DEMO_QUEUES)
    assert queues.group(1) == _number(len(DEMO_QUEUES))
    assert f"{_number(len(DEMO_AGENTS))} available agents" in README
    cities = {
        zone.split("/")[-1].replace("_", " ") for zone in (p["timeZone"] for p in DEMO_PROVIDERS.values())
    }
    providers = re.search(r"(\w+) providers in ([^.]*)\.", README)
    assert providers is not None
    assert providers.group(1) == _number(len(DEMO_PROVIDERS))
    assert set(re.split(r",\s*|\s+and\s+", providers.group(2))) == cities
    printed = "\n".join(banner.lines)
    for label in DEMO_USERS:
        assert f"  {label}: ey" in printed
    for name in ("PATIENT_TOKEN", "NURSE_TOKEN", "BOT_TOKEN"):
        assert f"${name}" in README
    assert "Tokens (8 h)" in printed


def _number(n: int) -> str:
    return {2: "two", 3: "three", 4: "four", 5: "five"}[n]


def test_a_dev_token_printed_by_the_readme_command_is_accepted(
    dev_host: tuple[int, Banner, dict[str, str]],
) -> None:
    port, _, env = dev_host
    command = next(line for line in README.splitlines() if "-m devhost token --sub" in line).split("#")[0]
    issued = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    result = _run_bash(
        f'curl -H "Authorization: Bearer {issued}" http://{DOCUMENTED_PORT}/api/agents/me', port, env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "agent-7"
