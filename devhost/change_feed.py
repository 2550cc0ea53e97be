"""Cosmos DB triggers fed from the embedded store's change feed, with the Functions Cosmos DB
trigger's semantics:

- progress lives in a lease document in the lease container (`leases`, partition key `/id`), one
  per function (`lease_container_prefix` + database + container), written with ETags: one host owns
  it, renews it every `lease_renew_interval`, and another may take it over only once it has not
  been renewed for `lease_expiration_interval` (a host that dies mid-batch hands its work on that
  way, and the new owner starts from the last checkpoint: at least once);
- a new lease starts at the beginning of the feed only with `start_from_beginning`, else at "now";
- each batch (up to `max_items_per_invocation`) goes to the function as a `func.DocumentList` of
  `func.Document`, built by the worker's own converter (`azure.functions.cosmosdb`);
- after the function returns the lease is checkpointed past the batch. **If the function raises,
  the batch is not retried** unless the function has a retry policy (`@app.retry`, fixed delay or
  exponential backoff, `max_retry_count` -1 for ever): without one, or once the retries are used
  up, the lease is checkpointed anyway and those changes are skipped (Azure Functions docs, "Azure
  Functions error handling and retries" and "Troubleshoot issues when using Azure Functions trigger
  for Azure Cosmos DB": the trigger does not retry a batch after an unhandled exception). A host
  that stops during retries checkpoints nothing, so the batch comes again;
- after the feed is drained the trigger waits `feed_poll_delay` (default 5000 ms) before polling.

`poll_once()` is one deterministic step for tests; `run_forever()` is the live loop. The lease is
renewed between attempts, not during one: a single invocation longer than the lease expiration lets
a second host (another dev host process on the same data) take the lease over and deliver the batch
again, as a host that stopped renewing would in Azure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from azure.functions import meta
from azure.functions.cosmosdb import CosmosDBTriggerConverter

from devhost.discovery import ChangeFeedFunction
from devhost.invocation import Invoker, Stopwatch, log_failure, log_invocation, new_id
from devhost.pacing import sleep_or_wake
from devhost.retry import run_with_policy
from shared.kernel.clock import Clock
from shared.kernel.documents import ChangeFeed, DocumentStore, Item
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed

logger = logging.getLogger("psc.devhost")


class ChangeFeedStore(DocumentStore, ChangeFeed, Protocol):
    """A document store that can read its change feed."""


@dataclass
class ChangeFeedStats:
    batches: int = 0
    items: int = 0
    failures: int = 0
    skipped_batches: int = 0
    leases_acquired: int = 0
    leases_lost: int = 0
    last_error: str | None = None


def host_owner_id() -> str:
    """A lease owner name for this process: a restarted host is a new owner, as in Azure."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def to_document_list(items: list[Item]) -> Any:
    """What the Python worker hands the function: its own converter over the trigger's JSON."""
    return CosmosDBTriggerConverter.decode(meta.Datum(json.dumps(items), "json"), trigger_metadata={})


class ChangeFeedRunner:
    """Feeds one Cosmos DB-triggered function from a store's change feed."""

    def __init__(
        self,
        function: ChangeFeedFunction,
        store: ChangeFeedStore,
        clock: Clock,
        invoker: Invoker,
        *,
        owner: str | None = None,
    ) -> None:
        self.function = function
        self._store = store
        self._leases = store.container(function.lease_container)
        self._clock = clock
        self._invoker = invoker
        self.owner = owner or host_owner_id()
        self._lease: Item | None = None
        self.stats = ChangeFeedStats()

    @property
    def holds_lease(self) -> bool:
        return self._lease is not None

    async def poll_once(self, stop: asyncio.Event | None = None) -> int:
        """Own the lease (or take it over), read one batch after its checkpoint, deliver it under the
        retry policy and checkpoint; returns how many changes were delivered (0: nothing new, the
        lease is another host's, or the host stopped during retries)."""
        lease = await self._own_lease()
        if lease is None:
            return 0
        batch = await self._store.read_changes(
            self.function.container, after=lease.get("continuation"), max_items=self.function.max_items
        )
        if not batch.items:
            return 0
        outcome = await run_with_policy(
            lambda retry: self._invoke(batch.items, retry),
            self.function.retry,
            self._clock,
            stop,
        )
        if outcome.stopped:
            return 0
        self.stats.batches += 1
        if not outcome.succeeded:
            self.stats.skipped_batches += 1
            logger.error(
                "function %s failed on %d change(s) of %s after %d attempt(s); the lease moves past"
                " them, as the Cosmos DB trigger does (add a retry policy to keep retrying)",
                self.function.target.name,
                len(batch.items),
                self.function.container,
                outcome.attempts,
            )
        else:
            self.stats.items += len(batch.items)
        await self._checkpoint(batch.continuation)
        return len(batch.items)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll until `stop`: straight on while there are changes, else after `feed_poll_delay`
        (or the lease acquire interval while another host holds the lease)."""
        while not stop.is_set():
            try:
                delivered = await self.poll_once(stop)
            except Exception as exc:
                self.stats.last_error = type(exc).__name__
                logger.warning(
                    "reading the change feed of %s for %s failed (%s); retrying",
                    self.function.container,
                    self.function.target.name,
                    type(exc).__name__,
                )
                delivered = 0
            if delivered:
                await asyncio.sleep(0)
                continue
            delay = self.function.poll_delay if self._lease is not None else self.function.lease_acquire
            await sleep_or_wake(self._clock, delay.total_seconds(), (stop,))

    async def stop(self) -> None:
        """Give the lease up, so another host can take it at once (as the trigger does on shutdown)."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            await self._leases.replace({**lease, "owner": None}, etag=lease["_etag"])
        except (PreconditionFailed, NotFound):
            pass
        except Exception as exc:
            logger.warning("releasing lease %s failed (%s)", self.function.lease_id, type(exc).__name__)

    # -- the function --------------------------------------------------------------------------

    async def _invoke(self, items: list[Item], retry: int) -> None:
        await self._own_lease()  # keep the lease fresh between attempts
        name = self.function.target.name
        invocation_id = new_id()
        policy = self.function.retry
        fields: dict[str, str | int] = {
            "container": self.function.container,
            "items": len(items),
            "retry": retry,
        }
        watch = Stopwatch()
        try:
            await self._invoker.call(
                self.function.target,
                to_document_list(items),
                invocation_id=invocation_id,
                retry_count=retry,
                max_retry_count=policy.max_retry_count if policy else 0,
            )
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = type(exc).__name__
            log_failure(name, invocation_id, exc)
            log_invocation(
                function=name,
                trigger="cosmosDB",
                outcome="failed",
                duration_ms=watch.ms,
                correlation_id=invocation_id,
                failed=True,
                **fields,
            )
            raise
        log_invocation(
            function=name,
            trigger="cosmosDB",
            outcome="ok",
            duration_ms=watch.ms,
            correlation_id=invocation_id,
            failed=False,
            **fields,
        )

    # -- the lease -----------------------------------------------------------------------------

    def _stamp(self) -> str:
        return self._clock.now().isoformat()

    def _age(self, lease: Item) -> float:
        stamped = lease.get("renewedAt")
        if not isinstance(stamped, str):
            return float("inf")
        return (self._clock.now() - datetime.fromisoformat(stamped)).total_seconds()

    async def _own_lease(self) -> Item | None:
        """The lease if this host owns it (renewed when due), after taking it if it is free or expired."""
        function = self.function
        if self._lease is not None:
            # Past the expiry another host may have taken it: renewing (with the ETag) finds out.
            fresh_for = min(function.lease_renew, function.lease_expiration).total_seconds()
            if self._age(self._lease) < fresh_for:
                return self._lease
            return await self._write_lease({**self._lease, "renewedAt": self._stamp()}, self._lease["_etag"])
        try:
            current = await self._leases.read(function.lease_id, function.lease_id)
        except NotFound:
            return await self._create_lease()
        free = (
            current.get("owner") in (None, self.owner)
            or self._age(current) > function.lease_expiration.total_seconds()
        )
        if not free:
            return None
        taken = await self._write_lease(
            {**current, "owner": self.owner, "renewedAt": self._stamp()}, current["_etag"]
        )
        if taken is not None:
            self.stats.leases_acquired += 1
            logger.info("lease %s taken by %s", function.lease_id, self.owner)
        return taken

    async def _create_lease(self) -> Item | None:
        function = self.function
        start = (
            None
            if function.start_from_beginning
            else await self._store.change_feed_position(function.container)
        )
        document = {
            "id": function.lease_id,
            "owner": self.owner,
            "continuation": start,
            "renewedAt": self._stamp(),
            "function": function.target.name,
            "container": function.container,
        }
        try:
            self._lease = await self._leases.create(document)
        except Conflict:
            return None  # another host created it first
        self.stats.leases_acquired += 1
        return self._lease

    async def _write_lease(self, lease: Item, etag: str) -> Item | None:
        try:
            self._lease = await self._leases.replace(lease, etag=etag)
        except (PreconditionFailed, NotFound):
            if self._lease is not None:
                self.stats.leases_lost += 1
                logger.warning(
                    "lease %s was taken over by another host; it continues from the last checkpoint",
                    self.function.lease_id,
                )
            self._lease = None
        return self._lease

    async def _checkpoint(self, continuation: str) -> None:
        if self._lease is None:
            return
        await self._write_lease(
            {**self._lease, "continuation": continuation, "renewedAt": self._stamp()}, self._lease["_etag"]
        )
