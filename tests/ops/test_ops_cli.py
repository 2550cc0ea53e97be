"""`python -m ops` against the embedded bus: depths, dead-letter listing and resubmission, and the
promise that message bodies (possible PHI) are never printed unless asked for."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ops.cli import main
from shared.adapters.sqlite_bus import SqliteMessageBus
from shared.kernel.clock import SystemClock
from shared.kernel.messages import DeadLetterAdmin, OutgoingMessage, QueueSpec

QUEUES = {
    spec.name: spec
    for spec in (QueueSpec("reminders", "REMINDERS_QUEUE"), QueueSpec("routing", "ROUTING_QUEUE"))
}
SECRET_BODY = b'{"patientName": "Jane Roe", "phone": "+15550100"}'
REPO = Path(__file__).resolve().parents[2]


def bus_at(path: Path) -> SqliteMessageBus:
    return SqliteMessageBus(path, QUEUES, SystemClock())


async def _dead_letter(path: Path, queue: str, count: int) -> list[int]:
    bus = bus_at(path)
    try:
        for i in range(count):
            await bus.send(queue, OutgoingMessage(body=SECRET_BODY, message_id=f"{queue}-{i}", subject="s"))
        sequence_numbers = []
        for message in await bus.receive(queue, max_messages=count):
            await bus.dead_letter(queue, message.lock_token, "ValidationFailed", "appointment id missing")
            sequence_numbers.append(message.sequence_number)
        await bus.send(queue, OutgoingMessage(body=b"{}", message_id=f"{queue}-live"))
        await bus.schedule(
            queue,
            OutgoingMessage(body=b"{}", message_id=f"{queue}-later"),
            SystemClock().now() + timedelta(hours=1),
        )
        return sequence_numbers
    finally:
        await bus.close()


def dead_letter(path: Path, queue: str, count: int) -> list[int]:
    return asyncio.run(_dead_letter(path, queue, count))


def run(path: Path, *argv: str) -> tuple[int, str, str]:
    @asynccontextmanager
    async def admin() -> AsyncIterator[DeadLetterAdmin]:
        bus = bus_at(path)
        try:
            yield bus
        finally:
            await bus.close()

    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), queues=QUEUES, admin=admin, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def bus_file(tmp_path: Path) -> Path:
    return tmp_path / "bus.sqlite3"


def test_queues_shows_every_catalogue_queue_with_its_counts(bus_file: Path) -> None:
    dead_letter(bus_file, "reminders", 2)

    status, out, _ = run(bus_file, "queues")

    assert status == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows == {"reminders": ["1", "1", "2"], "routing": ["0", "0", "0"]}


def test_list_shows_ids_and_reasons_but_never_the_body(bus_file: Path) -> None:
    sequence_numbers = dead_letter(bus_file, "reminders", 2)

    status, out, _ = run(bus_file, "deadletters", "list", "reminders")

    assert status == 0
    for sequence in sequence_numbers:
        assert str(sequence) in out
    assert "ValidationFailed" in out
    assert "Jane Roe" not in out


def test_peek_shows_reason_description_and_delivery_count_without_the_body(bus_file: Path) -> None:
    dead_letter(bus_file, "reminders", 1)

    status, out, err = run(bus_file, "deadletters", "peek", "reminders")

    assert status == 0
    assert "appointment id missing" in out
    assert "delivery count  : 1" in out
    assert "Jane Roe" not in out + err
    assert "PHI" not in err


def test_peek_with_show_body_prints_the_body_behind_a_warning(bus_file: Path) -> None:
    dead_letter(bus_file, "reminders", 1)

    status, out, err = run(bus_file, "deadletters", "peek", "reminders", "--show-body")

    assert status == 0
    assert "Jane Roe" in out
    assert "WARNING" in err
    assert "PHI" in err


def test_peek_honours_max(bus_file: Path) -> None:
    dead_letter(bus_file, "reminders", 3)

    _, out, _ = run(bus_file, "deadletters", "peek", "reminders", "--max", "2")

    assert out.count("sequence number") == 2


def test_resubmit_sends_the_named_message_back_to_its_queue(bus_file: Path) -> None:
    first, second = dead_letter(bus_file, "reminders", 2)

    status, out, _ = run(bus_file, "deadletters", "resubmit", "reminders", str(first))

    assert status == 0
    assert f"{first}: resubmitted" in out
    _, listing, _ = run(bus_file, "deadletters", "list", "reminders")
    assert f"{first}\treminders-0\t" not in listing
    _, depths, _ = run(bus_file, "queues")
    assert depths.splitlines()[1].split() == ["reminders", "2", "1", "1"]
    assert f"{second}\treminders-1\t" in listing


def test_resubmit_all_empties_the_dead_letter_queue(bus_file: Path) -> None:
    dead_letter(bus_file, "reminders", 3)

    status, out, _ = run(bus_file, "deadletters", "resubmit", "reminders", "--all")

    assert status == 0
    assert out.count("resubmitted") == 3
    _, listing, _ = run(bus_file, "deadletters", "list", "reminders")
    assert "no dead-lettered messages" in listing


def test_resubmitting_an_unknown_sequence_number_fails_and_says_which(bus_file: Path) -> None:
    (known,) = dead_letter(bus_file, "reminders", 1)

    status, out, err = run(bus_file, "deadletters", "resubmit", "reminders", "999999", str(known))

    assert status == 1
    assert "999999: not resubmitted" in err
    assert f"{known}: resubmitted" in out


def test_an_unknown_queue_is_refused_with_the_catalogue_names(bus_file: Path) -> None:
    status, _, err = run(bus_file, "deadletters", "list", "nope")

    assert status == 2
    assert "reminders" in err


def test_resubmit_needs_sequence_numbers_or_all(bus_file: Path) -> None:
    assert run(bus_file, "deadletters", "resubmit", "reminders")[0] == 2
    assert run(bus_file, "deadletters", "resubmit", "reminders", "1", "--all")[0] == 2


def test_the_module_runs_from_settings_on_the_embedded_bus(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PSC_BUS": "embedded",
        "PSC_STORE": "embedded",
        "PSC_DATA_DIR": str(tmp_path),
        "PSC_AUTH_MODE": "dev",
        "PSC_DEV_JWT_SECRET": "x" * 40,
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops", "queues"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    # The product catalogue may have no queues yet; either way the command answers.
    assert result.stdout.startswith(("ENTITY", "no queues"))


def test_queues_without_the_manage_right_names_the_role_to_grant_and_fails() -> None:
    """Sender/Receiver roles cannot read queue depths on Service Bus; the operator must learn
    which role to ask for, on which namespace, not just that the bus 'cannot be reached'."""
    from types import SimpleNamespace

    from azure.core.exceptions import ClientAuthenticationError

    from shared.adapters.servicebus_bus import ServiceBusMessageBus

    class RefusingAdmin:
        async def get_queue_runtime_properties(self, entity: str) -> Any:
            response = SimpleNamespace(status_code=401, reason="Unauthorized", headers={}, text=lambda *a: "")
            raise ClientAuthenticationError(message="Manage,EntityRead claims required", response=response)

        async def close(self) -> None:
            pass

    @asynccontextmanager
    async def admin() -> AsyncIterator[DeadLetterAdmin]:
        bus = ServiceBusMessageBus(
            "sb-psc.servicebus.windows.net", QUEUES, lambda: object(), admin_factory=RefusingAdmin
        )
        try:
            yield bus
        finally:
            await bus.close()

    out, err = io.StringIO(), io.StringIO()
    status = main(["queues"], queues=QUEUES, admin=admin, out=out, err=err)

    assert status == 3
    message = err.getvalue()
    assert '"Azure Service Bus Data Owner"' in message
    assert "Manage" in message
    assert "sb-psc.servicebus.windows.net" in message
    assert "opsPrincipalId" in message
    assert out.getvalue() == ""


def test_the_module_reads_the_dev_hosts_settings_file_when_the_environment_has_none(tmp_path: Path) -> None:
    """On a laptop `python -m ops queues` works on the dev host's data with no exports: the local
    settings file (here the committed sample) supplies the rest, as it does for the dev host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PSC_", "ServiceBus", "COSMOS"))}
    settings = tmp_path / "local.settings.json"
    values = {"PSC_AUTH_MODE": "dev", "PSC_DEV_JWT_SECRET": "x" * 40, "PSC_DATA_DIR": str(tmp_path / "data")}
    settings.write_text(json.dumps({"Values": values}))
    with_file = subprocess.run(
        [sys.executable, "-m", "ops", "--settings", str(settings), "queues"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    sample = subprocess.run(
        [sys.executable, "-m", "ops", "queues"],
        cwd=REPO,
        env={**env, "PSC_DATA_DIR": str(tmp_path / "sample")},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert with_file.returncode == 0, with_file.stderr
    assert with_file.stdout.startswith("ENTITY")
    assert (tmp_path / "data" / "bus.sqlite3").exists()
    assert sample.returncode == 0, sample.stderr
