"""The real dev host (`python -m devhost`) with the test-only additions of
tests/devhost/outbox_host.py (quick change-feed leases, so a host started after a `kill -9` relays
at once) and two of its own, so a test can crash the follow-ups' dispatcher where it matters:

- the `followups` queue's lock lasts 3 s instead of 60 s, so the send a killed host held is
  delivered again a few seconds later (in Azure, after the queue's lock duration);
- `FOLLOWUPS_HOST_DIE=<purpose>`: the first time the channel accepts a send of that purpose
  (`reminder`, `survey`, `confirmation`), the host prints `accepted <notification id>` and exits at
  once (`os._exit`: no shutdown, no lock released, no outcome recorded), which is the moment
  between ACS's 202 and the dispatcher's record of it. The channel is the embedded one, or with
  `PSC_NOTIFY=acs` the real ACS adapter (and SDKs), whose 202 came from the ACS stand-in
  (`devhost/acs_standin.py`) the test runs on loopback.

    python -m tests.followups.followups_host [python -m devhost arguments]
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.kernel import catalog

LOCK = timedelta(seconds=3)


def _install() -> None:
    from shared.adapters.acs_notify import AcsNotifier
    from shared.adapters.embedded_notify import EmbeddedNotifier
    from tests.devhost import outbox_host

    outbox_host._install()
    spec = catalog.QUEUES[catalog.FOLLOWUPS_QUEUE]
    catalog.QUEUES[catalog.FOLLOWUPS_QUEUE] = replace(spec, lock_duration=LOCK)

    purpose = os.environ.get("FOLLOWUPS_HOST_DIE") or ""
    if not purpose:
        return
    send = EmbeddedNotifier._send

    async def dying(self: EmbeddedNotifier, channel: Any, to: str, body: Any, envelope: Any, pid: str) -> Any:
        result = await send(self, channel, to, body, envelope, pid)
        if result.accepted and envelope.purpose == purpose:
            print(f"accepted {envelope.notification_id}", flush=True)
            os._exit(137)
        return result

    EmbeddedNotifier._send = dying  # type: ignore[method-assign]

    def die_after(result: Any, envelope: Any) -> Any:
        if result.accepted and envelope.purpose == purpose:
            print(f"accepted {envelope.notification_id}", flush=True)
            os._exit(137)
        return result

    send_sms, send_email = AcsNotifier.send_sms, AcsNotifier.send_email

    async def acs_sms(self: AcsNotifier, to: str, text: str, *, envelope: Any) -> Any:
        return die_after(await send_sms(self, to, text, envelope=envelope), envelope)

    async def acs_email(
        self: AcsNotifier, to: str, subject: str, text: str, html: str | None = None, *, envelope: Any
    ) -> Any:
        return die_after(await send_email(self, to, subject, text, html, envelope=envelope), envelope)

    AcsNotifier.send_sms = acs_sms  # type: ignore[method-assign]
    AcsNotifier.send_email = acs_email  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    from devhost.cli import main

    raise SystemExit(main())
