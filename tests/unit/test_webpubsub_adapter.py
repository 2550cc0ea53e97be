"""What the Web PubSub adapter sends, and how it maps answers, without a service: the real SDK
client runs over a recording azure-core transport that answers as the service would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.core.rest._http_response_impl_async import RestAsyncHttpClientTransportResponse

from shared.adapters.webpubsub_realtime import WebPubSubRealtime
from shared.kernel.errors import AccessDenied, ConfigError, PayloadTooLarge, Unavailable

ENDPOINT = "https://psc-test.webpubsub.azure.com"
KEY = "an-access-key-of-the-service-0123456789abcdef"


class _Raw:
    """Just enough of an http.client response for azure-core's rest response."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self.reason, self._body, self._headers = status, "fake", body, headers

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers.items())

    def read(self) -> bytes:
        return self._body


class RecordingTransport(AsyncHttpTransport):
    def __init__(self, answer: Callable[[Any], tuple[int, Any]] | None = None) -> None:
        self.requests: list[Any] = []
        self._answer = answer or (lambda request: (202, None))

    async def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests.append(request)
        self.last_options = kwargs
        status, body = self._answer(request)
        if isinstance(body, Exception):
            raise body
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = RestAsyncHttpClientTransportResponse(
            request=request, internal_response=_Raw(status, data, headers)
        )
        await response.read()  # as azure-core's own transports do for a response that is not streamed
        return response

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> RecordingTransport:
        return self

    async def __aexit__(self, *args: object) -> None:
        pass


class FakeCredential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("entra-token", int(time.time()) + 3600)

    async def close(self) -> None:
        self.closed = True


def keyless(transport: RecordingTransport) -> tuple[WebPubSubRealtime, FakeCredential]:
    credential = FakeCredential()
    options = {"transport": transport, "retry_total": 0}
    return WebPubSubRealtime(
        ENDPOINT, "psc", credential=lambda: credential, client_options=options
    ), credential


def keyed(transport: RecordingTransport, endpoint: str = ENDPOINT) -> WebPubSubRealtime:
    options = {"transport": transport, "retry_total": 0}
    return WebPubSubRealtime(endpoint, "psc", access_key=KEY, client_options=options)


def query(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


async def test_keyless_client_urls_come_from_the_services_generate_token_api_without_roles() -> None:
    transport = RecordingTransport(lambda request: (200, {"token": "service-made-token"}))
    realtime, credential = keyless(transport)

    url = await realtime.client_url("agent-7", ["conv.c1.staff", "agent.agent-7", "conv.c1.staff"], minutes=3)

    assert url == "wss://psc-test.webpubsub.azure.com/client/hubs/psc?access_token=service-made-token"
    (request,) = transport.requests
    assert request.method == "POST"
    assert urlsplit(request.url).path == "/api/hubs/psc/:generateToken"
    params = query(request)
    assert params["userId"] == ["agent-7"]
    assert params["group"] == ["conv.c1.staff", "agent.agent-7"]  # each once, in order
    assert params["minutesToExpire"] == ["3"]
    assert "role" not in params  # no join, leave or send permission
    assert request.headers["Authorization"] == "Bearer entra-token"
    assert credential.scopes == [("https://webpubsub.azure.com/.default",)]
    assert transport.last_options["connection_timeout"] == 5


async def test_keyed_client_urls_are_signed_locally_with_the_groups_and_no_role() -> None:
    transport = RecordingTransport()
    realtime = keyed(transport, "http://127.0.0.1:7072")

    url = await realtime.client_url("p-1", ["conv.c1.patient"], minutes=2)

    assert transport.requests == []
    base, _, token = url.partition("?access_token=")
    assert base == "ws://127.0.0.1:7072/client/hubs/psc"  # the SDK turns http into ws itself
    claims = jwt.decode(token, KEY, algorithms=["HS256"], audience="http://127.0.0.1:7072/client/hubs/psc")
    assert claims["sub"] == "p-1"
    assert claims["webpubsub.group"] == ["conv.c1.patient"]
    assert "role" not in claims
    assert 100 <= claims["exp"] - time.time() <= 120


async def test_send_to_group_posts_the_json_payload_to_the_group() -> None:
    transport = RecordingTransport()
    realtime, _ = keyless(transport)

    await realtime.send_to_group("conv.c1.patient", {"kind": "message", "text": "Dzień dobry"})

    (request,) = transport.requests
    assert request.method == "POST"
    assert urlsplit(request.url).path == "/api/hubs/psc/groups/conv.c1.patient/:send"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"kind": "message", "text": "Dzień dobry"}


async def test_rest_calls_with_a_key_carry_a_jwt_whose_audience_is_the_request_url() -> None:
    transport = RecordingTransport(lambda request: (204, None))
    realtime = keyed(transport)

    await realtime.remove_user_from_group("conv.c1.staff", "agent-7")

    (request,) = transport.requests
    assert request.method == "DELETE"
    assert urlsplit(request.url).path == "/api/hubs/psc/users/agent-7/groups/conv.c1.staff"
    token = request.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, KEY, algorithms=["HS256"], audience=request.url)
    assert claims["exp"] - time.time() <= 60


async def test_group_membership_changes_put_and_delete_the_users_group() -> None:
    transport = RecordingTransport(lambda request: (200 if request.method == "PUT" else 204, None))
    realtime, _ = keyless(transport)

    await realtime.add_user_to_group("conv.c1.staff", "agent-7")
    await realtime.remove_user_from_group("conv.c1.staff", "agent-8")

    added, removed = transport.requests
    assert (added.method, urlsplit(added.url).path) == (
        "PUT",
        "/api/hubs/psc/users/agent-7/groups/conv.c1.staff",
    )
    assert (removed.method, urlsplit(removed.url).path) == (
        "DELETE",
        "/api/hubs/psc/users/agent-8/groups/conv.c1.staff",
    )
    assert all(r.headers["Authorization"] == "Bearer entra-token" for r in transport.requests)
    assert all("api-version" in query(r) for r in transport.requests)


async def test_ping_asks_whether_the_probe_group_exists() -> None:
    transport = RecordingTransport(lambda request: (404, None))
    realtime, _ = keyless(transport)

    await realtime.ping()

    (request,) = transport.requests
    assert request.method == "HEAD"
    assert urlsplit(request.url).path == "/api/hubs/psc/groups/psc.ping"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, Unavailable),
        (500, Unavailable),
        (429, Unavailable),
        (401, Unavailable),
        (403, AccessDenied),
        (413, PayloadTooLarge),
    ],
)
async def test_service_answers_map_to_our_errors(status: int, error: type[Exception]) -> None:
    realtime, _ = keyless(RecordingTransport(lambda request: (status, {"code": "x"})))
    with pytest.raises(error):
        await realtime.send_to_group("supervisors", {"x": 1})


async def test_a_refusal_we_caused_is_not_hidden_as_unavailable() -> None:
    realtime, _ = keyless(RecordingTransport(lambda request: (400, {"code": "BadRequest"})))
    with pytest.raises(HttpResponseError):
        await realtime.send_to_group("supervisors", {"x": 1})


async def test_an_unreachable_service_is_unavailable() -> None:
    realtime, _ = keyless(RecordingTransport(lambda request: (0, ServiceRequestError("refused"))))
    with pytest.raises(Unavailable):
        await realtime.ping()


async def test_bad_input_never_reaches_the_service() -> None:
    transport = RecordingTransport()
    realtime, _ = keyless(transport)
    with pytest.raises(ValueError, match="group"):
        await realtime.send_to_group("conv 1", {"x": 1})
    with pytest.raises(PayloadTooLarge):
        await realtime.send_to_group("conv.c1.patient", {"x": "y" * 1_000_000})
    with pytest.raises(ValueError, match="user id"):
        await realtime.remove_user_from_group("conv.c1.staff", "anna kowalska")
    assert transport.requests == []


async def test_close_closes_the_client_and_the_credential_it_made() -> None:
    realtime, credential = keyless(RecordingTransport())
    await realtime.send_to_group("supervisors", {"x": 1})
    await realtime.close()
    assert credential.closed


def settings(**values: Any) -> Any:
    defaults = {
        "realtime": "embedded",
        "webpubsub_endpoint": None,
        "webpubsub_hub": "psc",
        "realtime_port": 7072,
        "realtime_key": "k" * 40,
        "azure_client_id": None,
    }
    return SimpleNamespace(**{**defaults, **values})


def test_embedded_settings_point_at_the_local_hub_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for marker in ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME"):
        monkeypatch.delenv(marker, raising=False)
    realtime = WebPubSubRealtime.from_settings(settings(realtime_port=7999))
    assert realtime.endpoint == "http://127.0.0.1:7999"
    assert realtime.hub == "psc"


@pytest.mark.parametrize(
    ("values", "named"),
    [({"realtime_key": None}, "PSC_REALTIME_KEY"), ({"realtime_port": 0}, "PSC_REALTIME_PORT")],
)
def test_embedded_settings_that_cannot_reach_a_hub_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, Any], named: str
) -> None:
    for marker in ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME"):
        monkeypatch.delenv(marker, raising=False)
    with pytest.raises(ConfigError, match=named):
        WebPubSubRealtime.from_settings(settings(**values))


def test_the_embedded_hub_and_its_key_are_refused_in_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc")
    with pytest.raises(ConfigError, match="PSC_REALTIME"):
        WebPubSubRealtime.from_settings(settings())


def test_web_pubsub_settings_use_the_identity_never_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc")
    realtime = WebPubSubRealtime.from_settings(
        settings(
            realtime="webpubsub", webpubsub_endpoint=ENDPOINT, realtime_key="k" * 40, azure_client_id="c"
        )
    )
    assert realtime.endpoint == ENDPOINT
    assert realtime._access_key is None
