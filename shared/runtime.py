"""Composition root: builds the adapters the settings ask for, once per worker, on first use.

Handlers reach dependencies only through `get_runtime()`. Nothing is created at import time; the
Azure SDKs are imported only when their adapter is chosen, so they stay off the embedded cold path.
Tests and the dev host build a Runtime themselves and install it with `use_runtime` (a context
variable, so concurrent tests never see each other's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.kernel.clock import Clock, SystemClock

if TYPE_CHECKING:
    # Settings (pydantic-settings) and token validation (PyJWT, cryptography) are loaded when the
    # first invocation builds the runtime, not while the host indexes the functions.
    from shared.auth.tokens import TokenValidator
    from shared.config import Settings
    from shared.kernel.archive import Archive
    from shared.kernel.callbacks import CallbackSender
    from shared.kernel.documents import DocumentStore
    from shared.kernel.exports import Exports
    from shared.kernel.messages import MessageBus
    from shared.kernel.notify import Notifier
    from shared.kernel.realtime import Realtime
    from shared.kernel.search import Search
    from shared.kernel.secrets import Secrets
    from shared.kernel.workflows import WorkflowPoster
    from shared.web.health import HealthCache


@dataclass
class Runtime:
    settings: Settings
    store: DocumentStore
    bus: MessageBus
    clock: Clock
    archive: Archive
    # Conversation transcripts: an archive of their own (a container apart from the exports').
    transcripts: Archive
    # Built once per worker so the Entra JWKS cache lives as long as the worker does.
    validator: TokenValidator
    # The last health probe, shared by every request to this worker (shared/web/health.py).
    health: HealthCache | None = field(default=None, repr=False)
    # Built on first use (`realtime`): most invocations push nothing, and the Web PubSub SDK
    # loads only when one does. The dev host and tests may install one built against their hub.
    realtime_adapter: Realtime | None = field(default=None, repr=False)

    @property
    def realtime(self) -> Realtime:
        if self.realtime_adapter is None:
            from shared.adapters.webpubsub_realtime import WebPubSubRealtime

            self.realtime_adapter = WebPubSubRealtime.from_settings(self.settings)
        return self.realtime_adapter

    # Built by the first notification (`notifier`), so other invocations never load the ACS SDKs.
    _notifier: Notifier | None = field(default=None, repr=False)

    @property
    def notifier(self) -> Notifier:
        """The channel `PSC_NOTIFY` names, built on first use and kept for the worker's life."""
        if self._notifier is None:
            self._notifier = build_notifier(self.settings, self.store, self.bus, self.clock)
        return self._notifier

    # Built on first use, kept for the worker's life: the knowledge search index (FTS5 file or the
    # Cosmos DB `search` container), the secrets store (a file, or Key Vault) and the HTTP client
    # that posts Teams cards (address-guarded like bot callbacks).
    _search: Search | None = field(default=None, repr=False)
    _secrets: Secrets | None = field(default=None, repr=False)
    _workflows: WorkflowPoster | None = field(default=None, repr=False)

    @property
    def search(self) -> Search:
        if self._search is None:
            self._search = build_search(self.settings, self.store)
        return self._search

    @property
    def secrets(self) -> Secrets:
        if self._secrets is None:
            self._secrets = build_secrets(self.settings)
        return self._secrets

    @property
    def workflows(self) -> WorkflowPoster:
        if self._workflows is None:
            from shared.adapters.workflow_sender import HttpWorkflowPoster

            self._workflows = HttpWorkflowPoster.from_settings(self.settings, self.clock)
        return self._workflows

    # Built by the first bot callback (aiohttp and the signer load then), kept for the worker's
    # life; tests and the dev host may install their own.
    callback_sender: CallbackSender | None = field(default=None, repr=False)

    @property
    def callbacks(self) -> CallbackSender:
        if self.callback_sender is None:
            from shared.adapters.callback_sender import HttpCallbackSender

            self.callback_sender = HttpCallbackSender.from_settings(self.settings, self.clock)
        return self.callback_sender

    # Built by the first export (`exports`): the nightly timer and `python -m ops export` only.
    _exports: Exports | None = field(default=None, repr=False)

    @property
    def exports(self) -> Exports:
        """Where the Power BI export goes: `<data dir>/exports/`, or the `exports` blob container."""
        if self._exports is None:
            self._exports = build_exports(self.settings)
        return self._exports

    async def close(self) -> None:
        for extra in (self._search, self._secrets, self._workflows, self.callback_sender, self._exports):
            if extra is not None:
                await extra.close()
        if self._notifier is not None:
            await self._notifier.close()
        await self.store.close()
        await self.bus.close()
        await self.archive.close()
        await self.transcripts.close()
        if self.realtime_adapter is not None:
            await self.realtime_adapter.close()


def build_notifier(settings: Settings, store: DocumentStore, bus: MessageBus, clock: Clock) -> Notifier:
    if settings.notify == "acs":
        from shared.adapters.acs_notify import AcsNotifier

        return AcsNotifier.from_settings(settings, clock)
    from shared.adapters.embedded_notify import EmbeddedNotifier

    return EmbeddedNotifier(
        store, bus, clock, sms_from=settings.acs_sms_from, email_sender=settings.acs_email_sender
    )


def build_search(settings: Settings, store: DocumentStore) -> Search:
    if settings.store == "cosmos":
        from shared.adapters.cosmos_documents import CosmosDocumentStore
        from shared.adapters.cosmos_search import CosmosSearch

        assert isinstance(store, CosmosDocumentStore)
        return CosmosSearch(store)
    from shared.adapters.sqlite_search import SqliteSearch

    return SqliteSearch(settings.data_dir / "search.sqlite3")


def build_exports(settings: Settings) -> Exports:
    if settings.archive == "blob":
        from shared.adapters.blob_exports import BlobExports

        return BlobExports.from_settings(settings)
    from shared.adapters.file_exports import FileExports

    return FileExports(settings.data_dir / "exports")


def build_secrets(settings: Settings) -> Secrets:
    if settings.secrets == "keyvault":
        from shared.adapters.keyvault_secrets import KeyVaultSecrets

        return KeyVaultSecrets.from_settings(settings)
    from shared.adapters.embedded_secrets import EmbeddedSecrets

    return EmbeddedSecrets(settings.data_dir / "secrets.sqlite3")


_override: ContextVar[Runtime | None] = ContextVar("psc_runtime_override", default=None)
_default: Runtime | None = None
_default_lock = asyncio.Lock()


def _archive(settings: Settings, container: str, folder: str) -> Archive:
    """The archive `PSC_ARCHIVE` names: blob `container`, or files under PSC_DATA_DIR/`folder`."""
    if settings.archive == "blob":
        from shared.adapters.blob_archive import BlobArchive

        return BlobArchive.from_settings(settings, container=container)
    from shared.adapters.file_archive import FileArchive

    return FileArchive(settings.data_dir / folder)


async def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    from shared.auth.tokens import build_validator
    from shared.kernel.catalog import CONTAINERS, QUEUES, TOPICS

    clock = clock or SystemClock()
    store: DocumentStore
    bus: MessageBus
    if settings.store == "cosmos":
        from shared.adapters.cosmos_documents import CosmosDocumentStore

        store = CosmosDocumentStore.from_settings(settings, CONTAINERS)
    else:
        from shared.adapters.sqlite_documents import SqliteDocumentStore

        store = SqliteDocumentStore(settings.data_dir / "store.sqlite3", CONTAINERS, clock)
    if settings.bus == "servicebus":
        from shared.adapters.servicebus_bus import ServiceBusMessageBus

        bus = ServiceBusMessageBus.from_settings(settings, QUEUES, TOPICS)
    else:
        from shared.adapters.sqlite_bus import SqliteMessageBus

        bus = SqliteMessageBus(settings.data_dir / "bus.sqlite3", QUEUES, clock, topics=TOPICS)
    return Runtime(
        settings=settings,
        store=store,
        bus=bus,
        clock=clock,
        archive=_archive(settings, settings.archive_container, "archive"),
        transcripts=_archive(settings, settings.transcripts_container, "transcripts"),
        validator=build_validator(settings, clock),
    )


async def get_runtime() -> Runtime:
    override = _override.get()
    if override is not None:
        return override
    global _default
    if _default is None:
        async with _default_lock:
            if _default is None:
                from shared.config import get_settings
                from shared.kernel.observability import install_logging
                from shared.telemetry import configure_telemetry

                install_logging()
                settings = get_settings()
                configure_telemetry(settings)
                _default = await build_runtime(settings)
    return _default


@contextlib.contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    token = _override.set(runtime)
    try:
        yield runtime
    finally:
        _override.reset(token)
