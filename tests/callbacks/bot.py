"""A recording bot endpoint on loopback: answers as scripted, verifies every signature with the
reference library, and keeps what it saw. Plus a self-signed certificate for a bot host name and a
resolver that answers whatever addresses a test chooses."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_dGVzdC1vbmx5LWJvdC1jYWxsYmFjay1zZWNyZXQtMDEyMw=="


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b""


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: Any


class RecordingBot:
    """`answers` are used in turn (the last one repeats)."""

    def __init__(self, *answers: Answer, secret: str = SECRET) -> None:
        self.secret = secret
        self.answers = list(answers) or [Answer()]
        self.seen: list[Seen] = []
        self.sni: list[str | None] = []
        self._server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            verified = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            verified = exc
        self.seen.append(Seen(request.path_qs, dict(request.headers), body, verified))
        answer = self.answers[min(len(self.seen) - 1, len(self.answers) - 1)]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server(ssl=ssl_context)
        assert self._server.port is not None
        return self._server.port

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()


class FixedResolver(AbstractResolver):
    """Answers `addresses(host)` for every lookup and counts the lookups."""

    def __init__(self, addresses: Callable[[str], list[str]]) -> None:
        self.addresses = addresses
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        self.lookups.append(host)
        return [
            ResolveResult(hostname=host, host=a, port=port, family=10 if ":" in a else 2, proto=0, flags=0)
            for a in self.addresses(host)
        ]

    async def close(self) -> None:
        pass


def certificate(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name`: (the server's context, a client context trusting
    only it). The client context checks the host name, as the default one does."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
