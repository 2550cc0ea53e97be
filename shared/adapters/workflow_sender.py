"""Posting Teams cards to a team's Workflows URL over HTTP (aiohttp), with the bot callbacks'
guards (shared/adapters/callback_sender.py says what each rests on): the address guard at connect
time (the resolver refuses a lookup with any private, loopback (but a listed loopback host in dev
mode), link-local or metadata address; the socket factory checks every address once more), no
redirects, no proxies or cookies from anywhere, 5 s to connect and 15 s in all, the body of the
answer never read. Logs carry the host and the outcome, never the URL (its query is the
signature) nor the card.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver

from shared.adapters.callback_sender import (
    CONNECT_TIMEOUT,
    TOTAL_TIMEOUT,
    AddressCheck,
    GuardedResolver,
    _failure_reason,
    guarded_socket_factory,
)
from shared.callbacks.api import address_refusal, classify_status
from shared.consults.api import WorkflowUrlPolicy, WorkflowUrlRefused
from shared.kernel.callbacks import DeliveryReason, DeliveryResult
from shared.kernel.clock import Clock

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger("psc.consults")

USER_AGENT = "psc-teams-consults/1"


class HttpWorkflowPoster:
    """`WorkflowPoster` over aiohttp; one session per worker, created on the first post."""

    def __init__(
        self,
        policy: WorkflowUrlPolicy,
        clock: Clock,
        *,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        address_check: AddressCheck = address_refusal,
        connect_timeout: float = CONNECT_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._resolver = resolver
        self._ssl = ssl_context
        self._check = address_check
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> HttpWorkflowPoster:
        return cls(WorkflowUrlPolicy.from_settings(settings), clock)

    async def _client(self) -> aiohttp.ClientSession:
        async with self._lock:
            if self._session is None:
                guard = self._policy.listed
                connector = aiohttp.TCPConnector(
                    resolver=GuardedResolver(guard, self._resolver, self._check),
                    use_dns_cache=False,
                    force_close=True,
                    ssl=self._ssl if self._ssl is not None else True,
                    socket_factory=guarded_socket_factory(guard, self._check),
                )
                self._session = aiohttp.ClientSession(
                    connector=connector,
                    timeout=self._timeout,
                    trust_env=False,
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                )
            return self._session

    async def post(self, url: str, payload: Mapping[str, Any]) -> DeliveryResult:
        try:
            url = self._policy.check_url(url)
        except WorkflowUrlRefused as refused:
            reason: DeliveryReason = (
                "address-refused" if refused.reason == "address-refused" else "url-refused"
            )
            return self._done(None, DeliveryResult.failed(reason), refused.reason)
        from yarl import URL

        host = URL(url).raw_host
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        session = await self._client()
        try:
            async with session.post(
                url,
                data=body,
                headers={"content-type": "application/json", "user-agent": USER_AGENT},
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding",),
            ) as response:
                result = classify_status(
                    response.status, response.headers.get("Retry-After"), self._clock.now()
                )
                response.close()
        except Exception as exc:  # every failure is a classified result, never an exception
            reason, detail = _failure_reason(exc)
            return self._done(host, DeliveryResult.failed(reason), detail)
        return self._done(host, result, None)

    def _done(self, host: str | None, result: DeliveryResult, detail: str | None) -> DeliveryResult:
        log.log(
            logging.INFO if result.ok else logging.WARNING,
            "teams card to %s: %s (%s)",
            host or "-",
            result.reason,
            detail or "-",
            extra={"reason": result.reason, "status": result.status},
        )
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
