"""The runtime builds the notifier `PSC_NOTIFY` names on first use, and only a send loads the ACS
SDKs: a worker that never notifies never pays for them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.adapters.embedded_notify import EmbeddedNotifier
from shared.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


async def test_the_default_runtime_notifies_through_the_embedded_channel(runtime: Runtime) -> None:
    assert runtime._notifier is None
    notifier = runtime.notifier
    assert isinstance(notifier, EmbeddedNotifier)
    assert runtime.notifier is notifier


def test_the_acs_sdks_load_with_the_first_send_not_with_the_runtime(tmp_path: Path) -> None:
    probe = f"""
import asyncio, sys
from datetime import UTC, datetime
from shared.kernel.clock import ManualClock
from shared.kernel.notify import Envelope
from shared.runtime import build_runtime
from tests.conftest import make_settings

async def main():
    settings = make_settings({str(tmp_path)!r}, PSC_NOTIFY='acs', ACS__endpoint='http://127.0.0.1:9',
                             ACS_SMS_FROM='+18005550100')
    runtime = await build_runtime(settings, clock=ManualClock())
    notifier = runtime.notifier
    assert not [m for m in sys.modules if m.startswith('azure.communication')], 'loaded early'
    try:
        envelope = Envelope('n', 'p', 'reminder', 'a', ManualClock().now())
        await notifier.send_sms('+48601000001', 'x', envelope=envelope)
    except Exception as exc:  # nothing listens on port 9
        print(type(exc).__name__)
    assert 'azure.communication.sms' in sys.modules
    await runtime.close()

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Unavailable"
