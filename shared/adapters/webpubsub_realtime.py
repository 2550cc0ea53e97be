"""Realtime on Azure Web PubSub through its SDK (`azure-messaging-webpubsubservice`, aio client).

In Azure it is keyless: the managed identity (role Web PubSub Service Owner) signs every REST call
with an Entra token for `https://webpubsub.azure.com/.default`, and since the SDK cannot sign a
client token without a key, `get_client_access_token` asks the service's REST `:generateToken`
for one (the SDK's aio `_operations/_patch.py`: the key path signs locally, any other credential
calls the generated operation).

On a laptop the same class talks to the dev host's embedded hub (`devhost/realtime_hub.py`) at
`http://127.0.0.1:<PSC_REALTIME_PORT>` with the hub's access key as an `AzureKeyCredential`: the
SDK then signs client tokens itself (HS256, `aud` = `<endpoint>/client/hubs/<hub>`) and each REST
call with a 60-second JWT whose `aud` is the request URL, exactly as for a Web PubSub connection
string. The SDK takes an `http://` endpoint and turns it into a `ws://` client URL, so nothing is
adapted. A key is never used in Azure.

Imported only when real time is first used, so neither the SDK nor azure.identity is on the cold path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.adapters.azure_credentials import close_quietly
from shared.kernel.errors import AccessDenied, ConfigError, PayloadTooLarge, Unavailable
from shared.kernel.realtime import (
    DEFAULT_TOKEN_MINUTES,
    check_group,
    check_minutes,
    check_user_id,
    encoded_payload,
)

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

# azure-core's aiohttp transport waits 300 s by default; a push must not hold a request that long.
TIMEOUTS = {"connection_timeout": 5, "read_timeout": 10}
# `ping` asks whether this group has connections: it proves the endpoint, the credential and the
# role in one data-plane call, and no client is ever put in it.
PING_GROUP = "psc.ping"
SERVICE_OWNER = "Web PubSub Service Owner"


class WebPubSubRealtime:
    """Implements `shared.kernel.realtime.Realtime` on one Web PubSub hub."""

    def __init__(
        self,
        endpoint: str,
        hub: str,
        *,
        credential: Callable[[], Any] | None = None,
        access_key: str | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Either `credential`, a factory called on first use that returns an async token
        credential the adapter then owns, or `access_key` (the embedded hub's, or a Web PubSub
        connection string's for the integration tests). `client_options`: azure-core client
        options such as `transport` or `retry_total` (tests)."""
        if (credential is None) == (access_key is None):
            raise ValueError("give a token credential factory or an access key, not both")
        self.endpoint = endpoint.rstrip("/")
        self.hub = hub
        self._credential_factory = credential
        self._access_key = access_key
        self._client_options = dict(client_options or {})
        self._credential: Any = None
        self._service: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebPubSubRealtime:
        from shared.config import running_in_azure

        if settings.realtime == "webpubsub":
            from shared.adapters.azure_credentials import azure_credential

            assert settings.webpubsub_endpoint  # settings validation requires it
            return cls(
                settings.webpubsub_endpoint,
                settings.webpubsub_hub,
                credential=lambda: azure_credential(settings),
            )
        if running_in_azure():
            raise ConfigError(
                "PSC_REALTIME: the embedded hub runs only beside the dev host; set PSC_REALTIME=webpubsub"
                " and PSC_WEBPUBSUB_ENDPOINT in Azure"
            )
        if not settings.realtime_key:
            raise ConfigError(
                "PSC_REALTIME_KEY: the embedded hub's key is required outside the dev host (which makes"
                " one); run `python -m devhost hub` with the same settings"
            )
        if settings.realtime_port == 0:
            raise ConfigError("PSC_REALTIME_PORT: 0 lets the dev host pick a port; other processes need it")
        return cls(
            f"http://127.0.0.1:{settings.realtime_port}",
            settings.webpubsub_hub,
            access_key=settings.realtime_key,
        )

    async def _client(self) -> Any:
        if self._service is not None:
            return self._service
        async with self._lock:
            if self._service is None:
                from azure.messaging.webpubsubservice.aio import WebPubSubServiceClient

                if self._access_key is not None:
                    from azure.core.credentials import AzureKeyCredential

                    credential: Any = AzureKeyCredential(self._access_key)
                else:
                    assert self._credential_factory is not None
                    self._credential = credential = self._credential_factory()
                self._service = WebPubSubServiceClient(
                    self.endpoint, self.hub, credential, **self._client_options
                )
        return self._service

    async def client_url(
        self, user_id: str, groups: Sequence[str], *, minutes: int = DEFAULT_TOKEN_MINUTES
    ) -> str:
        check_user_id(user_id)
        # dict.fromkeys: each group once, in the caller's order.
        names = list(dict.fromkeys(check_group(group) for group in groups))
        check_minutes(minutes)
        service = await self._client()
        try:
            # No roles: the connection may not join, leave or send; it only receives its groups.
            token = await service.get_client_access_token(
                user_id=user_id, groups=names, minutes_to_expire=minutes, **TIMEOUTS
            )
        except AzureError as exc:
            _raise_mapped(exc)
        return str(token["url"])

    async def send_to_group(self, group: str, payload: Mapping[str, Any]) -> None:
        check_group(group)
        encoded_payload(payload)  # the size and JSON checks every backend shares
        service = await self._client()
        try:
            await service.send_to_group(group, dict(payload), content_type="application/json", **TIMEOUTS)
        except AzureError as exc:
            _raise_mapped(exc)

    async def add_user_to_group(self, group: str, user_id: str) -> None:
        check_group(group)
        check_user_id(user_id)
        service = await self._client()
        try:
            await service.add_user_to_group(group=group, user_id=user_id, **TIMEOUTS)
        except AzureError as exc:
            _raise_mapped(exc)

    async def remove_user_from_group(self, group: str, user_id: str) -> None:
        check_group(group)
        check_user_id(user_id)
        service = await self._client()
        try:
            await service.remove_user_from_group(group=group, user_id=user_id, **TIMEOUTS)
        except AzureError as exc:
            _raise_mapped(exc)

    async def ping(self) -> None:
        service = await self._client()
        try:
            await service.group_exists(group=PING_GROUP, **TIMEOUTS)
        except AzureError as exc:
            _raise_mapped(exc)

    async def close(self) -> None:
        service, self._service = self._service, None
        credential, self._credential = self._credential, None
        for resource in (service, credential):
            if resource is not None:
                await close_quietly(resource)


def _raise_mapped(exc: AzureError) -> NoReturn:
    status = getattr(exc, "status_code", None)
    if status == 413:
        raise PayloadTooLarge("The real-time service refused the payload as too large.") from exc
    if status == 403:
        raise AccessDenied(
            f"Web PubSub refused this identity; it needs the role {SERVICE_OWNER}.", right=SERVICE_OWNER
        ) from exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError | ClientAuthenticationError):
        raise Unavailable("The real-time service cannot be reached.") from exc
    if not isinstance(exc, HttpResponseError) or status is None or status in (401, 408, 429) or status >= 500:
        raise Unavailable("The real-time service is unavailable.") from exc
    raise exc
