"""What the dashboard's routes serve: the page, its files (an allow-list of what `assets/` holds,
built at first use), the headers every one of them carries, and the sign-in configuration.

* Only files under `assets/` with a known type (HTML, JavaScript, CSS) are served, by their file
  name; names are unique across the folder, so a URL names one file and never a path.
* `Content-Security-Policy`: scripts, styles and fetches from this origin only, plus the real-time
  hub's WebSocket origin and, with Entra sign-in, Entra's login host; no inline script or style,
  no plugin, no `<base>`, and the page cannot be framed (the sign-in redirect page only by itself,
  for MSAL's silent renewal in a hidden frame).
* `Cache-Control`: vendored files carry their version in their name and never change (a year,
  immutable); our own files five minutes, so a deploy shows within that; the page is revalidated
  on every load; the sign-in redirect page is never stored (its URL briefly holds an
  authorization code).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, RootModel

from shared.config import Settings

ASSETS = Path(__file__).parent / "assets"
PAGE = "index.html"
# MSAL.js 5's redirect bridge: Entra sends the sign-in answer here, and it hands it to the page.
REDIRECT_PAGE = "redirect.html"
VENDOR = "vendor"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# The delegated scope the API registration exposes (docs/IDENTITY.md).
API_SCOPE = "access_as_user"

VENDOR_CACHE = "public, max-age=31536000, immutable"
OWN_CACHE = "public, max-age=300"
PAGE_CACHE = "no-cache"
REDIRECT_CACHE = "no-store"


class StaticFile(RootModel[str]):
    """A file of the dashboard as it is stored (HTML, JavaScript or CSS), not JSON."""


class EntraSignIn(BaseModel):
    """What MSAL.js needs to sign a supervisor in with Entra ID. Nothing secret: a public
    client's id, the tenant's authority and the API's scope."""

    clientId: str = Field(description="The API registration's application (client) id (PSC_ENTRA_CLIENT_ID).")
    authority: str = Field(description="`{PSC_ENTRA_AUTHORITY}/{PSC_ENTRA_TENANT_ID}`.")
    scopes: list[str] = Field(description="The API scope to request: `<App ID URI>/access_as_user`.")


class DashboardConfig(BaseModel):
    """How the dashboard signs in: `dev` asks for a dev token, `entra` signs in with MSAL.js."""

    authMode: Literal["dev", "entra"]
    entra: EntraSignIn | None = None


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    cache_control: str


@cache
def assets() -> dict[str, Asset]:
    """Every servable file under assets/ by file name, read once."""
    found: dict[str, Asset] = {}
    for path in sorted(ASSETS.rglob("*")):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        if path.name in found:
            raise RuntimeError(f"two dashboard files are named {path.name}: names must be unique")
        if VENDOR in path.relative_to(ASSETS).parts:
            cache_control = VENDOR_CACHE
        else:
            cache_control = {PAGE: PAGE_CACHE, REDIRECT_PAGE: REDIRECT_CACHE}.get(path.name, OWN_CACHE)
        found[path.name] = Asset(path.name, path.read_bytes(), content_type, cache_control)
    return found


def page() -> Asset:
    return assets()[PAGE]


def asset(name: str) -> Asset | None:
    """A file the page loads, or None (the page itself has its own URL)."""
    return None if name == PAGE else assets().get(name)


def headers(item: Asset, settings: Settings) -> dict[str, str]:
    return {
        "Cache-Control": item.cache_control,
        "Content-Security-Policy": content_security_policy(
            settings, framed_by_self=item.name == REDIRECT_PAGE
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def content_security_policy(settings: Settings, *, framed_by_self: bool = False) -> str:
    login = login_origin(settings)
    hub = hub_origin(settings)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # data: only for the empty favicon, which keeps the browser from asking the host root.
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", *([hub] if hub else []), *([login] if login else [])],
        # MSAL renews tokens in a hidden frame on the login host when a refresh token has expired.
        "frame-src": [login] if login else ["'none'"],
        "frame-ancestors": ["'self'"] if framed_by_self else ["'none'"],
        "form-action": ["'self'", *([login] if login else [])],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def hub_origin(settings: Settings) -> str | None:
    """The origin (`ws://` or `wss://`) of the URLs the negotiate endpoints hand out."""
    if settings.realtime == "webpubsub":
        endpoint = settings.webpubsub_endpoint or ""
    elif settings.realtime_port:
        # As WebPubSubRealtime.from_settings reaches the dev host's hub.
        endpoint = f"http://127.0.0.1:{settings.realtime_port}"
    else:
        return None
    parts = urlsplit(endpoint)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme)
    return f"{scheme}://{parts.netloc}" if scheme and parts.netloc else None


def login_origin(settings: Settings) -> str | None:
    if settings.auth_mode != "entra":
        return None
    parts = urlsplit(settings.entra_authority)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def config(settings: Settings) -> DashboardConfig:
    if settings.auth_mode != "entra":
        return DashboardConfig(authMode="dev")
    client_id = settings.entra_client_id or ""
    app_id_uri = (settings.entra_audience or f"api://{client_id}").rstrip("/")
    return DashboardConfig(
        authMode="entra",
        entra=EntraSignIn(
            clientId=client_id,
            authority=f"{settings.entra_authority.rstrip('/')}/{settings.entra_tenant_id}",
            scopes=[f"{app_id_uri}/{API_SCOPE}"],
        ),
    )
