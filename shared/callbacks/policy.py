"""Bot callbacks: the rules beneath delivery, pure (no I/O).

An escalation may name a callback URL; the bot then receives signed POSTs about its conversation
(PRODUCT.md "Bot callbacks"). This module holds what those deliveries must obey, so the webhook,
the sender and the schedule share one definition:

* `CallbackPolicy.check_url`: which URLs an escalation may name. `https` only (`http` only for a
  loopback host in dev mode), no user info, no fragment, at most 2,048 characters, the host
  (IDNA-normalised, lower-case) listed in `PSC_BOT_CALLBACK_HOSTS`. Answers the normalised URL or
  raises `CallbackUrlRefused` with a fixed reason code (never the URL: it may carry a token).
* `address_refusal`: which IP addresses a delivery may connect to, whatever DNS says.
* `callback_body`: the body, exactly `{"type", "timestamp", "data": {...}}`.
* `classify_status`: what an HTTP answer means for the schedule (`DeliveryResult`).

URLs are parsed with yarl, the parser aiohttp itself uses to connect: the host checked here is the
host the sender dials, with no second parser to disagree with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING, Any, Literal

from shared.kernel.callbacks import (
    CALLBACK_TYPES,
    DeliveryResult,
)
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.config import Settings


MAX_URL_LENGTH = 2048
LOOPBACK_NAMES = frozenset({"localhost"})
DEFAULT_PORTS = {"https": 443, "http": 80}

UrlRefusal = Literal[
    "malformed",
    "too-long",
    "scheme",
    "https-required",
    "userinfo",
    "fragment",
    "host-not-allowed",
    "port-not-allowed",
    "address-refused",
]
_URL_MESSAGES: dict[str, str] = {
    "malformed": "must be an absolute https URL",
    "too-long": f"must be at most {MAX_URL_LENGTH} characters",
    "scheme": "must be an https URL",
    "https-required": "must use https (http only for a loopback host in dev mode)",
    "userinfo": "must not carry a user name or password",
    "fragment": "must not carry a fragment (#...)",
    "host-not-allowed": "host is not listed in PSC_BOT_CALLBACK_HOSTS",
    "port-not-allowed": "port is not allowed for this host by PSC_BOT_CALLBACK_HOSTS",
    "address-refused": "must not name a private, loopback, link-local or reserved address",
}


class CallbackUrlRefused(ValueError):
    """A callback URL the policy refuses. The message is a fixed rule (fit for a 400 field
    error); `reason` is the code for logs and tests. Neither repeats the URL."""

    def __init__(self, reason: UrlRefusal) -> None:
        super().__init__(f"callback url {_URL_MESSAGES[reason]}")
        self.reason: UrlRefusal = reason


# --- host names and the allow-list -------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Characters no URL we accept may hold anywhere: controls, whitespace, backslash (WHATWG parsers
# read `\` as `/`, urllib-style ones as part of the authority: a parser differential).
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


def normalise_host(raw: str) -> str:
    """A host as yarl hands it over (A-labels, lower-case, IPv6 without brackets), checked: an IP
    address in canonical form, or a name of LDH labels. One trailing dot (a fully qualified name)
    is dropped. ValueError otherwise."""
    host = raw.lower()
    if ":" in host:
        return str(IPv6Address(host.split("%", 1)[0]))  # a zone id never names a callback
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if labels[-1].isdigit():
        # Dotted-quad only: 2130706433, 127.1 and 0x7f.1 are IPv4 spellings some resolvers accept.
        return str(IPv4Address(host))
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("not a host name")
    return host


def is_loopback_host(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1 (a normalised host)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AllowedHost:
    """One entry of PSC_BOT_CALLBACK_HOSTS: `host`, `host:port`, `*.domain` or `*.domain:port`.
    A wildcard stands for exactly one label, as in a TLS certificate (`*.bots.example.org` allows
    `eu.bots.example.org`, not `bots.example.org` nor `a.eu.bots.example.org`). Without a port only
    the scheme's default port is allowed."""

    host: str
    wildcard: bool = False
    port: int | None = None

    def names(self, host: str) -> bool:
        if self.wildcard:
            first, _, parent = host.partition(".")
            return bool(first) and parent == self.host
        return host == self.host


def parse_allowed_hosts(text: str) -> tuple[AllowedHost, ...]:
    """Comma-separated entries, normalised. ValueError (naming the entry) for a scheme, path,
    user info, bare `*`, a wildcard over fewer than two labels (`*.org`) or inside a name, or an
    IP address under a wildcard."""
    from yarl import URL

    found: list[AllowedHost] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        wildcard = entry.startswith("*.")
        rest = entry[2:] if wildcard else entry
        if "*" in rest or _FORBIDDEN.search(rest) or any(c in rest for c in "/?#@"):
            raise ValueError(f"{entry!r} is not a host, host:port or *.domain entry")
        try:
            url = URL("https://" + rest)
            host = normalise_host(url.raw_host or "")
            port = url.explicit_port
        except ValueError:
            raise ValueError(f"{entry!r} is not a host, host:port or *.domain entry") from None
        if port == 0:
            raise ValueError(f"{entry!r}: port 0 is not a port")
        if wildcard and (_is_ip(host) or host.count(".") < 1):
            raise ValueError(f"{entry!r}: a wildcard needs a domain of at least two labels")
        found.append(AllowedHost(host=host, wildcard=wildcard, port=port))
    return tuple(found)


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


# --- the URL policy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackPolicy:
    """Which callback URLs are allowed. `dev_mode` (PSC_AUTH_MODE=dev, refused in Azure) lets a
    loopback host listed in the allow-list be reached over http, on any port."""

    allowed: tuple[AllowedHost, ...]
    dev_mode: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackPolicy:
        return cls(
            allowed=parse_allowed_hosts(settings.bot_callback_hosts or ""),
            dev_mode=settings.auth_mode == "dev",
        )

    def loopback_allowed(self, host: str) -> bool:
        return self.dev_mode and is_loopback_host(host)

    def check_url(self, text: str) -> str:
        """The normalised URL, or `CallbackUrlRefused`."""
        from yarl import URL

        if len(text) > MAX_URL_LENGTH:
            raise CallbackUrlRefused("too-long")
        if _FORBIDDEN.search(text):
            raise CallbackUrlRefused("malformed")
        if "#" in text:
            raise CallbackUrlRefused("fragment")
        try:
            url = URL(text)
            port = url.explicit_port
        except ValueError:
            raise CallbackUrlRefused("malformed") from None
        if not url.is_absolute() or not url.raw_host:
            raise CallbackUrlRefused("malformed")
        if url.scheme not in DEFAULT_PORTS:
            raise CallbackUrlRefused("scheme")
        # From the text: yarl drops an empty user info (`https://@host/`) without a trace.
        authority = re.split(r"[/?#]", text.partition("://")[2], maxsplit=1)[0]
        if "@" in authority or url.raw_user is not None or url.raw_password is not None:
            raise CallbackUrlRefused("userinfo")
        try:
            host = normalise_host(url.raw_host)
        except ValueError:
            raise CallbackUrlRefused("malformed") from None
        if port == 0:
            raise CallbackUrlRefused("malformed")
        if port == DEFAULT_PORTS[url.scheme]:
            port = None
        loopback = self.loopback_allowed(host)
        if url.scheme == "http" and not loopback:
            raise CallbackUrlRefused("https-required")
        if loopback:
            # Local bots and emulators pick their own ports (the Bot Framework's is 3978).
            if not any(entry.names(host) for entry in self.allowed):
                raise CallbackUrlRefused("host-not-allowed")
        else:
            named = [entry for entry in self.allowed if entry.names(host)]
            if not named:
                raise CallbackUrlRefused("host-not-allowed")
            if not any(entry.port == port for entry in named):
                raise CallbackUrlRefused("port-not-allowed")
            # Known at once to be refused at connect time: say so now, as a 400 to the bot.
            if host in LOOPBACK_NAMES or (_is_ip(host) and address_refusal(host, allow_loopback=False)):
                raise CallbackUrlRefused("address-refused")
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        query = f"?{url.raw_query_string}" if url.raw_query_string else ""
        normalised = f"{url.scheme}://{netloc}{url.raw_path}{query}"
        if len(normalised) > MAX_URL_LENGTH:  # percent-encoding made it longer
            raise CallbackUrlRefused("too-long")
        return normalised


# --- the address guard ------------------------------------------------------------------------

AddressRefusal = Literal[
    "malformed",
    "loopback",
    "private",
    "link-local",
    "metadata",
    "cgnat",
    "multicast",
    "unspecified",
    "reserved",
    "not-global",
]
IPAddress = IPv4Address | IPv6Address

# Instance metadata and platform endpoints: Azure IMDS (also AWS/GCP) 169.254.169.254, Azure's
# platform virtual IP 168.63.129.16 (a public address: only an explicit entry refuses it), AWS's
# IPv6 IMDS fd00:ec2::254. Named first so the log says "metadata", not just "link-local".
_METADATA: tuple[IPv4Network | IPv6Network, ...] = (
    ip_network("169.254.169.254/32"),
    ip_network("168.63.129.16/32"),
    ip_network("fd00:ec2::254/128"),
)
_CGNAT = ip_network("100.64.0.0/10")
_IETF_PROTOCOL = ip_network("192.0.0.0/24")  # Python 3.11 calls most of it global
_NAT64 = ip_network("64:ff9b::/96")
_NAT64_LOCAL = ip_network("64:ff9b:1::/48")


def address_refusal(value: str | IPAddress, *, allow_loopback: bool) -> AddressRefusal | None:
    """None when a delivery may connect to this address; otherwise the class that refuses it.
    An IPv6 address that carries an IPv4 one (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96,
    6to4 2002::/16) is judged by the IPv4 address it reaches. Loopback passes only with
    `allow_loopback` (dev mode, loopback host); nothing else private ever does."""
    if isinstance(value, str):
        try:
            ip: IPAddress = ip_address(value.split("%", 1)[0])
        except ValueError:
            return "malformed"
    else:
        ip = value
    if isinstance(ip, IPv6Address):
        if ip in _NAT64_LOCAL:
            return "private"
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(embedded, allow_loopback=allow_loopback)
    if any(ip in network for network in _METADATA):
        return "metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip in _CGNAT:
        return "cgnat"
    if ip.is_private or (isinstance(ip, IPv6Address) and ip.is_site_local):
        return "private"
    if ip.is_reserved or ip in _IETF_PROTOCOL:
        return "reserved"
    if not ip.is_global:
        return "not-global"
    return None


# --- the body and the outcome -----------------------------------------------------------------


def callback_body(event_type: str, data: Mapping[str, Any], timestamp: datetime) -> bytes:
    """`{"type", "timestamp", "data"}` as compact UTF-8 JSON; `timestamp` is when the event
    happened (UTC, milliseconds, Z). `data` must name the conversation both ways."""
    if event_type not in CALLBACK_TYPES:
        raise ValueError(f"unknown callback type {event_type!r}")
    for key in ("conversationId", "botConversationId"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"callback data needs {key}")
    body = {"type": event_type, "timestamp": stamp(timestamp), "data": dict(data)}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


MAX_RETRY_AFTER = 3600.0  # seconds; a longer Retry-After is read as this


def classify_status(status: int, retry_after: str | None, now: datetime) -> DeliveryResult:
    """2xx delivered. 3xx `redirect`: never followed (the URL is the bot's to fix, and a redirect
    could lead anywhere), dead-lettered. 410 `gone`: stop this conversation's callbacks (as the
    Standard Webhooks spec advises). 408, 425, 429 and 5xx are retried, honouring Retry-After.
    Any other 4xx is the bot refusing this delivery: retrying the same bytes cannot change that."""
    if 200 <= status <= 299:
        return DeliveryResult(ok=True, reason="delivered", status=status)
    wait = parse_retry_after(retry_after, now)
    if 300 <= status <= 399:
        return DeliveryResult(ok=False, reason="redirect", status=status)
    if status == 410:
        return DeliveryResult(ok=False, reason="gone", status=status)
    if status == 429:
        return DeliveryResult(ok=False, reason="rate-limited", status=status, retry_after=wait)
    if status in (408, 425):
        return DeliveryResult(ok=False, reason="request-timeout", status=status, retry_after=wait)
    if 400 <= status <= 499:
        return DeliveryResult(ok=False, reason="client-error", status=status)
    # 5xx, and anything outside the defined classes: the receiver misbehaved, maybe for now.
    return DeliveryResult(ok=False, reason="server-error", status=status, retry_after=wait)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now` (delay-seconds or an HTTP date), within
    [0, MAX_RETRY_AFTER]; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER) if len(value) <= 10 else MAX_RETRY_AFTER
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a date without a zone is not one
    return max(0.0, min((when - now).total_seconds(), MAX_RETRY_AFTER))
