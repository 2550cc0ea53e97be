"""Bot callbacks over HTTP (aiohttp): signed, guarded, never following a redirect.

What each choice rests on (aiohttp 3.14, read in its source):

* **Address guard at connect time.** `TCPConnector(resolver=GuardedResolver(...))`: the connector
  asks the resolver once per connection and dials exactly the addresses it returns
  (`_create_direct_connection` builds the socket addresses from the resolved `host` fields; no
  second lookup, so DNS rebinding has nothing to rebind). The guard refuses the whole lookup if
  *any* address is private, loopback, link-local, metadata, reserved... (`address_refusal`).
  `use_dns_cache=False` keeps no answer between deliveries. An IP-literal URL skips the resolver
  (`_resolve_host` returns it as is), so the policy has already judged it, and a socket factory
  checks every address once more just before `connect()` (defence in depth). TLS SNI and
  certificate checks use the URL's host name (`server_hostname = req.server_hostname or host`), as
  does the Host header: connecting by address changes neither.
* **No redirects**: `allow_redirects=False` returns the 3xx response itself, classed `redirect`.
* **No proxies from the environment**: `trust_env=False` (also the default); no `proxy=`.
* **Bounded**: 5 s to connect (DNS included: the connector's timeout wraps the lookup), 15 s in
  all (the Standard Webhooks spec recommends 15-30 s; the low end keeps a blocked conversation
  short). The response body is never read: the status and headers are all we use
  (aiohttp bounds those at 8,190 bytes a line), and the connection is closed after each delivery
  (`force_close`), so no pooled connection outlives the lookup that vetted it.
* **No cookies** kept between bots (`DummyCookieJar`).

Logs carry the message id, the host name, the reason and the status; never the URL's path or
query (it may hold a token), never the body (it may hold a message's text).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.callbacks.api import (
    AddressRefusal,
    CallbackPolicy,
    CallbackUrlRefused,
    address_refusal,
    callback_body,
    classify_status,
    normalise_host,
)
from shared.kernel.callbacks import CallbackType, DeliveryReason, DeliveryResult
from shared.kernel.clock import Clock
from shared.kernel.errors import ConfigError

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType
    from standardwebhooks.webhooks import Webhook

    from shared.config import Settings

log = logging.getLogger("psc.callbacks")

USER_AGENT = "psc-bot-callbacks/1 (Standard Webhooks)"
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
# Standard Webhooks signs "{id}.{timestamp}.{body}": an id holding `.` could blur the fields.
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_:@-]{1,256}$")

AddressCheck = Callable[..., AddressRefusal | None]


class AddressRefused(OSError):
    """A resolved or dialled address the guard refuses (aiohttp wraps it; `refusal` says why)."""

    MARK = "address refused by the bot callback guard"

    def __init__(self, refusal: str) -> None:
        super().__init__(f"{self.MARK}: {refusal}")
        self.refusal = refusal


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's threaded getaddrinfo by default) and refuses the lookup
    when any address is refused. Loopback passes only for a loopback host name in dev mode."""

    def __init__(
        self,
        policy: CallbackPolicy,
        inner: AbstractResolver | None = None,
        check: AddressCheck = address_refusal,
    ) -> None:
        self._policy = policy
        self._inner = inner
        self._check = check

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        answers = await self._inner.resolve(host, port, family)
        try:
            loopback = self._policy.loopback_allowed(normalise_host(host))
        except ValueError:
            raise AddressRefused("malformed") from None
        if not answers:
            raise OSError(f"no address for {host}")
        for answer in answers:
            refusal = self._check(answer["host"], allow_loopback=loopback)
            if refusal is not None:
                raise AddressRefused(refusal)
        return answers

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def guarded_socket_factory(
    policy: CallbackPolicy, check: AddressCheck = address_refusal
) -> Callable[[AddrInfoType], socket.socket]:
    """The last look before connect(): every address, however it was found (an IP-literal URL
    never reaches the resolver). Without the host name at hand, loopback passes in dev mode only."""

    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        refusal = check(str(address[0]), allow_loopback=policy.dev_mode)
        if refusal is not None:
            raise AddressRefused(refusal)
        return socket.socket(family=family, type=type_, proto=proto)

    return create


class HttpCallbackSender:
    """`CallbackSender` over aiohttp. The session is created on the first delivery (it needs the
    running loop) and lives as long as the sender: one per worker. `resolver`, `ssl_context`,
    `address_check` and the timeouts are for tests; production takes the defaults."""

    def __init__(
        self,
        secret: str,
        policy: CallbackPolicy,
        clock: Clock,
        *,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        address_check: AddressCheck = address_refusal,
        connect_timeout: float = CONNECT_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
    ) -> None:
        self._webhook = _webhook(secret)
        self._policy = policy
        self._clock = clock
        self._resolver = resolver
        self._ssl = ssl_context
        self._check = address_check
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> HttpCallbackSender:
        if not settings.bot_callback_secret:
            raise ConfigError("PSC_BOT_CALLBACK_SECRET is required to deliver bot callbacks")
        return cls(settings.bot_callback_secret, CallbackPolicy.from_settings(settings), clock)

    async def _client(self) -> aiohttp.ClientSession:
        async with self._lock:
            if self._session is None:
                connector = aiohttp.TCPConnector(
                    resolver=GuardedResolver(self._policy, self._resolver, self._check),
                    use_dns_cache=False,
                    force_close=True,
                    ssl=self._ssl if self._ssl is not None else True,
                    socket_factory=guarded_socket_factory(self._policy, self._check),
                )
                self._session = aiohttp.ClientSession(
                    connector=connector,
                    timeout=self._timeout,
                    trust_env=False,
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                )
            return self._session

    async def deliver(
        self,
        url: str,
        event_type: CallbackType,
        data: Mapping[str, Any],
        *,
        message_id: str,
        timestamp: datetime,
    ) -> DeliveryResult:
        if not _MESSAGE_ID.match(message_id):
            raise ValueError("message_id must be 1-256 letters, digits, _, -, : or @")
        body = callback_body(event_type, data, timestamp)
        try:
            url = self._policy.check_url(url)
        except CallbackUrlRefused as refused:
            reason: DeliveryReason = (
                "address-refused" if refused.reason == "address-refused" else "url-refused"
            )
            return self._done(message_id, None, DeliveryResult.failed(reason), refused.reason)
        from yarl import URL

        host = URL(url).raw_host
        sent_at = self._clock.now().astimezone(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, sent_at, body.decode("utf-8")),
        }
        session = await self._client()
        try:
            async with session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding",),
            ) as response:
                result = classify_status(
                    response.status, response.headers.get("Retry-After"), self._clock.now()
                )
                response.close()  # the body is never read
        except Exception as exc:  # every failure becomes a classified result, never an exception
            reason, detail = _failure_reason(exc)
            return self._done(message_id, host, DeliveryResult.failed(reason), detail)
        return self._done(message_id, host, result, None)

    def _done(
        self, message_id: str, host: str | None, result: DeliveryResult, detail: str | None
    ) -> DeliveryResult:
        level = logging.INFO if result.ok else logging.WARNING
        log.log(
            level,
            "bot callback to %s: %s (%s)",
            host or "-",
            result.reason,
            detail or "-",
            extra={"message_id": message_id, "reason": result.reason, "status": result.status},
        )
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _webhook(secret: str) -> Webhook:
    from standardwebhooks.webhooks import Webhook

    try:
        return Webhook(secret)
    except Exception as exc:  # binascii.Error, EmptyWebhookSecretError, ...
        raise ConfigError(
            f"PSC_BOT_CALLBACK_SECRET is not a valid whsec_<base64> secret ({type(exc).__name__})"
        ) from None


def _refusal(exc: BaseException | None, depth: int = 0) -> str | None:
    """The guard's refusal inside aiohttp's wrapping (`os_error`, causes), if any."""
    if exc is None or depth > 8:
        return None
    if isinstance(exc, AddressRefused):
        return exc.refusal
    if AddressRefused.MARK in str(exc):  # happy eyeballs folds several failures into one OSError
        return "several"
    for inner in (getattr(exc, "os_error", None), exc.__cause__, exc.__context__):
        if inner is not None and inner is not exc:
            found = _refusal(inner, depth + 1)
            if found:
                return found
    return None


def _failure_reason(exc: Exception) -> tuple[DeliveryReason, str]:
    """The reason for an attempt that got no HTTP answer, and a detail for the log (a class name
    or the guard's refusal: never the exception text, which may quote the URL)."""
    refusal = _refusal(exc)
    if refusal is not None:
        return "address-refused", refusal
    detail = type(exc).__name__
    if isinstance(exc, aiohttp.InvalidURL):
        return "url-refused", detail
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls-error", detail
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's connect and read timeouts too
        return "timeout", detail
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns-error", detail
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
        return "connect-error", detail
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "protocol-error", detail
    raise exc
