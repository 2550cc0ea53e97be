"""Store operations per escalation and per assignment, counted through the store port, on the
real functions (signed webhook → `POST /api/escalations`; the `routing` queue function).

    python -m bench.store_ops [--escalations 200]

Prints the average per escalation (the webhook) and per routed conversation (the queue function
that assigns it), split into point operations, in-partition queries, cross-partition queries and
batches, and their sum: store round trips (a transactional batch is one). Targets: point
operations only on the escalation path, no cross-partition query per escalation or per assignment
(issue 4); at most 6 round trips per escalation at the webhook with the outbox (issue 13).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import tempfile
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from bench.counting import CountingStore, summary

SECRET = "bench-secret-0123456789abcdef-0123456789"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"bench-webhook-key-0123456789abcdef").decode()


async def run(count: int) -> None:
    from standardwebhooks.webhooks import Webhook

    import function_app
    from devhost.queues import to_functions_message
    from shared.config import Settings
    from shared.kernel.clock import SystemClock
    from shared.routing.assignment import Assignment
    from shared.routing.directory import RoutingDirectory
    from shared.routing.model import AgentProfile, Presence, QueueSettings, RoutingRules
    from shared.runtime import build_runtime, use_runtime

    functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            PSC_AUTH_MODE="dev",
            PSC_DEV_JWT_SECRET=SECRET,
            PSC_WEBHOOK_SECRET=WEBHOOK_SECRET,
            PSC_DATA_DIR=tmp,
            PSC_STORE="embedded",
            PSC_BUS="embedded",
        )
        plain = await build_runtime(settings, clock=SystemClock())
        counting = CountingStore(plain.store)
        runtime = dataclasses.replace(plain, store=counting)
        directory = RoutingDirectory(runtime.store)
        now = datetime.now(UTC)
        await directory.put_queue(
            "q", QueueSettings.model_validate({"name": "Q", "acceptTimeoutSeconds": 3600}), now
        )
        await directory.put_rules(RoutingRules.model_validate({"rules": [], "fallbackQueueId": "q"}), now)
        assignment = Assignment(runtime.store, runtime.bus, runtime.clock)
        for n in range(20):
            await directory.put_agent(f"a-{n}", AgentProfile(name=f"A{n}", capacity=100, queues=["q"]), now)
            await assignment.set_presence(f"a-{n}", Presence.AVAILABLE)
        while await runtime.bus.receive("routing", max_messages=50):  # type: ignore[attr-defined]
            pass  # presence notifications: not part of what is measured
        webhook = Webhook(WEBHOOK_SECRET)
        counting.take()
        with use_runtime(runtime):
            for n in range(count):
                body = json.dumps(
                    {
                        "botConversationId": f"bench-{n}",
                        "patient": {"email": f"nobody{n}@example.org"},
                        "reason": "Bench",
                        "triage": {"urgency": "routine"},
                        "transcript": [],
                    }
                )
                at = datetime.now(UTC)
                headers = {
                    "webhook-id": f"msg_{n}",
                    "webhook-timestamp": str(int(at.timestamp())),
                    "webhook-signature": webhook.sign(f"msg_{n}", at, body),
                    "content-type": "application/json",
                }
                request = func.HttpRequest(
                    "POST", "http://localhost/api/escalations", headers=headers, body=body.encode()
                )
                response = await functions["escalate"](request)
                assert response.status_code == 202, response.get_body()
            intake = counting.take()
            routed = 0
            while True:
                messages = await runtime.bus.receive("routing", max_messages=20)  # type: ignore[attr-defined]
                if not messages:
                    break
                for message in messages:
                    await functions["route"](to_functions_message(message))
                    await runtime.bus.complete("routing", message.lock_token)  # type: ignore[attr-defined]
                    routed += 1
            routing = counting.take()
        await plain.close()
    show("per escalation (webhook)", intake, count)
    show("per routed conversation (queue function)", routing, routed)


def show(what: str, counts: Any, per: int) -> None:
    figures = summary(counts, per)
    detail = {k: round(v / per, 2) for k, v in sorted(counts.items()) if ":" in k}
    # One round trip each: a point operation, a query page, a transactional batch (however many
    # documents it writes). Issue 13's goal for the webhook: at most 6.
    trips = round(sum(figures.values()), 2)
    print(f"{what}: {trips} store round trips {figures}")
    print(f"    by container: {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--escalations", type=int, default=200)
    asyncio.run(run(parser.parse_args().escalations))


if __name__ == "__main__":
    main()
