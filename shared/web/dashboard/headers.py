"""The response headers every dashboard answer carries (shared/web/site.py sets them), declared
so the OpenAPI document lists them."""

from __future__ import annotations

from shared.web.headers import Header

CACHE_CONTROL = Header(
    "Cache-Control",
    "Vendored files (their version is in the name): a year, immutable; our own files: 5 minutes; "
    "the page: revalidated on every load; the sign-in redirect page: never stored.",
    {"type": "string", "examples": ["public, max-age=300"]},
    required=True,
)
CONTENT_SECURITY_POLICY = Header(
    "Content-Security-Policy",
    "This origin only for scripts, styles and fetches, plus the real-time hub's WebSocket origin "
    "and, with Entra sign-in, Entra's login host; no inline script, no framing.",
    {
        "type": "string",
        "examples": ["default-src 'self'; script-src 'self'; connect-src 'self' ws://127.0.0.1:7072"],
    },
    required=True,
)
NOSNIFF = Header(
    "X-Content-Type-Options",
    "`nosniff`: browsers use the declared type only.",
    {"type": "string", "enum": ["nosniff"]},
    required=True,
)
REFERRER_POLICY = Header(
    "Referrer-Policy",
    "`no-referrer`: the page's address (and the sign-in redirect's) is never sent elsewhere.",
    {"type": "string", "enum": ["no-referrer"]},
    required=True,
)
STATIC_HEADERS = (CACHE_CONTROL, CONTENT_SECURITY_POLICY, NOSNIFF, REFERRER_POLICY)
