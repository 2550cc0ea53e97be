"""What the Key Vault adapter sends, and how it reads the answers, without a vault: the real
`azure-keyvault-secrets` client runs over a recording azure-core transport that answers as Key
Vault does (a 401 challenge first, then the secret bundle; 404 `SecretNotFound`; 5xx)."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.adapters.keyvault_secrets import KeyVaultSecrets
from shared.kernel.errors import Unavailable
from tests.unit.test_webpubsub_adapter import FakeCredential, RecordingTransport

TENANT = "72f988bf-0000-0000-0000-000000000000"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net"'
)


class Vault:
    """Key Vault's secrets API, as far as the adapter uses it: a request without a token gets the
    challenge (the client then asks the credential for the vault's scope and sends again)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.values: dict[str, str] = {}
        self.failure: tuple[int, Any] | Exception | None = None

    def answer(self, request: Any) -> tuple[int, Any]:
        if "Authorization" not in request.headers:
            return 401, None
        if self.failure is not None:
            if isinstance(self.failure, Exception):
                return 0, self.failure
            return self.failure
        name = urlsplit(request.url).path.strip("/").split("/")[1]
        if request.method == "PUT":
            body = json.loads(request.content)
            self.values[name] = body["value"]
            return 200, self.bundle(name, body.get("contentType"))
        if name not in self.values:
            return 404, {
                "error": {
                    "code": "SecretNotFound",
                    "message": f"A secret with (name/id) {name} was not found",
                }
            }
        return 200, self.bundle(name, "text/plain")

    def bundle(self, name: str, content_type: str | None) -> dict[str, Any]:
        return {
            "value": self.values[name],
            "id": f"{self.url}/secrets/{name}/0123456789abcdef0123456789abcdef",
            "contentType": content_type,
            "attributes": {"enabled": True, "created": 1767225600, "updated": 1767225600},
        }


class ChallengeTransport(RecordingTransport):
    """A 401 carries Key Vault's challenge header. `sent` keeps each request as it went out (the
    client reuses a request object for the round after the challenge)."""

    def __init__(self, answer: Any) -> None:
        super().__init__(answer)
        self.sent: list[SimpleNamespace] = []

    async def send(self, request: Any, **kwargs: Any) -> Any:
        self.sent.append(
            SimpleNamespace(
                method=request.method,
                url=request.url,
                headers=dict(request.headers),
                content=request.content,
            )
        )
        response = await super().send(request, **kwargs)
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = CHALLENGE
        return response


def _vault() -> tuple[KeyVaultSecrets, Vault, ChallengeTransport, FakeCredential, list[int]]:
    # A vault of its own per test: the SDK caches a vault's challenge per URL, process-wide.
    vault = Vault(f"https://psc-test-{uuid.uuid4().hex[:8]}.vault.azure.net")

    transport = ChallengeTransport(vault.answer)
    credential = FakeCredential()
    made: list[int] = []

    def factory() -> FakeCredential:
        made.append(1)
        return credential

    secrets = KeyVaultSecrets(vault.url, factory, client_options={"transport": transport, "retry_total": 0})
    return secrets, vault, transport, credential, made


async def test_put_sends_the_value_as_text_under_the_name_with_the_vaults_token() -> None:
    secrets, vault, transport, credential, made = _vault()
    assert made == []  # no credential or client before the first use

    await secrets.put("psc-team-url-0123", "https://prod.example/workflows/abc?sig=s3cret")

    challenge, sent = transport.sent
    assert (challenge.method, "Authorization" in challenge.headers) == ("PUT", False)
    assert not challenge.content  # the challenge round carries no secret
    assert sent.method == "PUT"
    url = urlsplit(sent.url)
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        urlsplit(vault.url).netloc,
        "/secrets/psc-team-url-0123",
    )
    assert parse_qs(url.query)["api-version"]
    assert json.loads(sent.content) == {
        "value": "https://prod.example/workflows/abc?sig=s3cret",
        "contentType": "text/plain",
    }
    assert sent.headers["Authorization"] == "Bearer entra-token"
    assert credential.scopes == [("https://vault.azure.net/.default",)]
    assert made == [1]
    await secrets.close()
    assert credential.closed


async def test_get_reads_the_current_value_and_none_for_a_secret_never_written() -> None:
    secrets, vault, transport, _, made = _vault()
    vault.values["psc-team-token-1"] = "outgoing-webhook-token"

    assert await secrets.get("psc-team-token-1") == "outgoing-webhook-token"
    assert await secrets.get("psc-team-token-2") is None

    reads = [r for r in transport.sent if "Authorization" in r.headers]
    assert [(r.method, urlsplit(r.url).path.rstrip("/")) for r in reads] == [
        ("GET", "/secrets/psc-team-token-1"),
        ("GET", "/secrets/psc-team-token-2"),
    ]
    assert made == [1]  # one client for the adapter's life
    await secrets.close()


async def test_what_put_writes_get_reads_back() -> None:
    secrets, _, _, _, _ = _vault()
    await secrets.put("psc-roundtrip", "value with spaces and ünïcode")
    assert await secrets.get("psc-roundtrip") == "value with spaces and ünïcode"
    await secrets.close()


@pytest.mark.parametrize(
    "failure",
    [
        (500, {"error": {"code": "InternalServerError", "message": "boom"}}),
        (403, {"error": {"code": "Forbidden", "message": "no"}}),
        ServiceRequestError("connection refused"),
    ],
    ids=["500", "403 (no role)", "unreachable"],
)
async def test_a_vault_that_fails_is_unavailable_for_reads_and_writes(failure: Any) -> None:
    secrets, vault, _, _, _ = _vault()
    vault.failure = failure
    with pytest.raises(Unavailable):
        await secrets.put("psc-x", "v")
    with pytest.raises(Unavailable):
        await secrets.get("psc-x")
    await secrets.close()


async def test_a_name_key_vault_would_refuse_is_refused_before_any_request() -> None:
    secrets, _, transport, _, _ = _vault()
    for name in ("has_underscore", "", "x" * 128, "slash/in"):
        with pytest.raises(ValueError, match="secret names"):
            await secrets.put(name, "v")
        with pytest.raises(ValueError, match="secret names"):
            await secrets.get(name)
    assert transport.sent == []
    await secrets.close()
