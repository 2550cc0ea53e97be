"""One OpenID provider's discovery document and signing keys, cached per worker.

Why not PyJWT's PyJWKClient: it fetches synchronously under a thread lock (a slow key endpoint
would hold every validating thread), reads `time.monotonic()` directly (the refetch limit could
not be tested without sleeping), and knows nothing of the discovery document. PyJWT still parses
the keys (`jwt.PyJWK`); only the caching policy is ours:

* the discovery document is read once and kept for a day;
* keys are kept until a token names a `kid` we do not have, then the key set is fetched again,
  **at most once a minute** however many unknown kids arrive (key rotation is picked up within a
  minute; forged kids cannot make us hammer the identity provider); a day-old key set is
  refreshed on the next use;
* concurrent callers share one fetch; a failed refresh keeps the keys we had.

Time comes from the runtime's Clock, so tests drive rotation with a ManualClock.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from shared.kernel.clock import Clock
from shared.kernel.errors import Unauthorized, Unavailable
from shared.kernel.json_reader import read_json

log = logging.getLogger("psc.auth")

DISCOVERY_TTL_SECONDS = 24 * 3600
KEYS_TTL_SECONDS = 24 * 3600
REFETCH_INTERVAL_SECONDS = 60
MAX_DOCUMENT_BYTES = 1024 * 1024
TENANT_PLACEHOLDER = "{tenantid}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could leave https (or loopback) behind; Entra's endpoints never redirect.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _fetch_json(url: str) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
    if parts.scheme != "https" and not loopback:
        raise ValueError("refusing to fetch identity metadata over plain HTTP")
    with _OPENER.open(url, timeout=10) as response:
        # Bounded like every JSON from outside (a JWKS is three levels deep).
        data = read_json(
            response.read(MAX_DOCUMENT_BYTES + 1)[:MAX_DOCUMENT_BYTES], max_bytes=MAX_DOCUMENT_BYTES
        )
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


async def _fetch(url: str, what: str) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(_fetch_json, url)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        log.warning("identity metadata unavailable", extra={"error_type": type(exc).__name__})
        raise Unavailable(f"{what} unavailable ({type(exc).__name__}).") from None


def _signing_keys(jwks: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """RSA signing keys by kid; anything else in the set is ignored."""
    keys: dict[str, jwt.PyJWK] = {}
    for entry in jwks.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK({**entry, "alg": "RS256"})
        except jwt.PyJWTError:
            continue
    return keys


@dataclass(frozen=True)
class Discovery:
    issuer: str
    jwks_uri: str


class OpenIdProvider:
    """The discovery document at `discovery_url` and the key set it points to."""

    def __init__(self, discovery_url: str, *, tenant_id: str, clock: Clock) -> None:
        self.discovery_url = discovery_url
        self._tenant_id = tenant_id
        self._clock = clock
        self._discovery: Discovery | None = None
        self._discovered_at: datetime | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_at: datetime | None = None  # last successful key fetch
        self._tried_at: datetime | None = None  # last key fetch, successful or not
        self._lock = asyncio.Lock()

    def _age(self, since: datetime | None) -> float:
        if since is None:
            return float("inf")
        # A clock that stepped backwards counts as "long ago": never block a refetch forever.
        elapsed = (self._clock.now() - since).total_seconds()
        return elapsed if elapsed >= 0 else float("inf")

    @property
    def known_issuer(self) -> str | None:
        """The issuer if the discovery document is at hand (no network)."""
        if self._discovery and self._age(self._discovered_at) < DISCOVERY_TTL_SECONDS:
            return self._discovery.issuer
        return None

    async def discovery(self) -> Discovery:
        known = self._discovery
        if known and self._age(self._discovered_at) < DISCOVERY_TTL_SECONDS:
            return known
        async with self._lock:
            known = self._discovery
            if known and self._age(self._discovered_at) < DISCOVERY_TTL_SECONDS:
                return known
            try:
                doc = await _fetch(self.discovery_url, "Identity metadata")
            except Unavailable:
                if known:  # a day-old document beats none; try again in a minute
                    self._discovered_at = self._clock.now() - timedelta(
                        seconds=DISCOVERY_TTL_SECONDS - REFETCH_INTERVAL_SECONDS
                    )
                    return known
                raise
            issuer, jwks_uri = doc.get("issuer"), doc.get("jwks_uri")
            if not (isinstance(issuer, str) and issuer and isinstance(jwks_uri, str) and jwks_uri):
                raise Unavailable("Identity metadata is incomplete.")
            # Multi-tenant documents carry a template (https://login.microsoftonline.com/{tenantid}/v2.0).
            issuer = issuer.replace(TENANT_PLACEHOLDER, self._tenant_id)
            self._discovery = Discovery(issuer=issuer, jwks_uri=jwks_uri)
            self._discovered_at = self._clock.now()
            return self._discovery

    async def issuer(self) -> str:
        return (await self.discovery()).issuer

    async def key(self, kid: str) -> jwt.PyJWK:
        """The signing key `kid`, refetching the key set at most once a minute when it is
        unknown. Unauthorized when the provider does not publish it."""
        found = self._keys.get(kid)
        if found is not None and self._age(self._keys_at) < KEYS_TTL_SECONDS:
            return found
        discovery = await self.discovery()
        async with self._lock:
            found = self._keys.get(kid)
            stale = self._age(self._keys_at) >= KEYS_TTL_SECONDS
            if (found is None or stale) and self._age(self._tried_at) >= REFETCH_INTERVAL_SECONDS:
                await self._refresh(discovery.jwks_uri)
                found = self._keys.get(kid)
        if found is None:
            if not self._keys:
                raise Unavailable("Signing keys unavailable.")
            raise Unauthorized("Invalid token (unknown signing key).")
        return found

    async def _refresh(self, jwks_uri: str) -> None:
        self._tried_at = self._clock.now()
        try:
            keys = _signing_keys(await _fetch(jwks_uri, "Signing keys"))
        except Unavailable:
            if self._keys:
                return  # keep the keys we have; a new kid waits for the provider to come back
            raise
        self._keys = keys
        self._keys_at = self._tried_at

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)
