"""The outbox relay: one Cosmos DB change-feed trigger per aggregate container (conversations,
appointments, agents, notifications) publishes each event document to the topic `events`, in change-feed order
(in order within a partition). Non-event documents are ignored (shared/kernel/relay.py).

Leases: the `leases` container (Bicep creates it; an identity-based connection cannot), one lease
prefix per function so the three never share a lease. Retry: exponential backoff for ever
(`max_retry_count` -1): without a policy the trigger checkpoints past a batch whose function raised
and those events would never be published; with one, a failed batch (bus down, throttled) is
retried and never skipped. A host that dies mid-batch checkpoints nothing, so the next owner of the
lease sends it again, and the topic's duplicate detection (message id = the event's id) drops the
copies. The dev host runs these same functions from the embedded store's change feed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import azure.functions as func

from shared.kernel.catalog import AGENTS, APPOINTMENTS, CONVERSATIONS, LEASES, NOTIFICATIONS

bp = func.Blueprint()

# The trigger reads the account through the identity (`COSMOS__accountEndpoint`), as the store does.
CONNECTION = "COSMOS"
DATABASE = "%COSMOS_DATABASE%"
# After the feed is drained, poll again this soon (the trigger's default is 5 s): a message reaches
# the patient's hub and the bot through this relay, and chat cannot wait seconds. The cost is one
# change-feed read per lease every 50 ms while an instance runs and the container is idle.
POLL_MS = 50

Handler = Callable[[func.DocumentList], Awaitable[None]]


# start_from_beginning: a lease created for the first time starts at the oldest change still in
# the container, so events written before the relay first ran (a deployment, a new prefix) are
# published too; later starts go on from the lease. Events older than their TTL are gone anyway.


async def _relay(docs: func.DocumentList) -> None:
    from shared.kernel.observability import new_correlation_id, request_scope
    from shared.kernel.relay import relay_events
    from shared.runtime import get_runtime

    with request_scope(new_correlation_id()):
        rt = await get_runtime()
        await relay_events(rt.bus, (doc.to_dict() for doc in docs))


def _relaying(container: str) -> Callable[[Handler], Handler]:
    """The change-feed trigger and retry policy every relay function has: only the container, and
    with it the lease prefix, differs."""

    def register(function: Handler) -> Handler:
        trigger = bp.cosmos_db_trigger(
            arg_name="docs",
            connection=CONNECTION,
            database_name=DATABASE,
            container_name=container,
            lease_container_name=LEASES,
            lease_container_prefix=f"events-{container}.",
            start_from_beginning=True,  # type: ignore[arg-type] # a bool in function.json; the stub says time
            feed_poll_delay=POLL_MS,
        )
        retry = bp.retry(
            strategy="exponential_backoff",
            max_retry_count="-1",
            minimum_interval="00:00:01",
            maximum_interval="00:01:00",
        )
        return retry(trigger(function))

    return register


@_relaying(CONVERSATIONS)
async def relay_conversation_events(docs: func.DocumentList) -> None:
    await _relay(docs)


@_relaying(APPOINTMENTS)
async def relay_appointment_events(docs: func.DocumentList) -> None:
    await _relay(docs)


@_relaying(AGENTS)
async def relay_agent_events(docs: func.DocumentList) -> None:
    await _relay(docs)


@_relaying(NOTIFICATIONS)
async def relay_notification_events(docs: func.DocumentList) -> None:
    """The follow-ups' events (`notification.sent`, `.failed`, `survey.sent` ...), from each
    patient's ledger partition."""
    await _relay(docs)
