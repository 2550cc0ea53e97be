"""Realtime port: server-to-client push over WebSockets, shaped after Azure Web PubSub.

A client gets a short-lived URL from `client_url` (through a negotiate endpoint that decides what
the user may see), connects with the `json.webpubsub.azure.v1` subprotocol, and is put in exactly
the groups its token names. The token carries no role, so the client can neither join nor leave a
group nor send: the service answers such a request with a `Forbidden` ack. The server pushes JSON
to a group with `send_to_group`; a group's frames arrive in the order they were sent. It is a push
channel only: nothing is stored, a frame sent while a client is away is lost for it, and a
reconnecting client catches up through the REST API.

`add_user_to_group` puts a user's open connections in a group (an agent who accepted a
conversation keeps the connection it has); `remove_user_from_group` takes a user's connections
out of a group at once (an agent whose conversation was transferred). It does not revoke a URL
already handed out: a token's groups are joined on every connect until it expires, which is why
URLs are short-lived (`minutes`).

Checked here, for every backend, so the embedded hub and Azure refuse the same things:
- group names (ids only, never PHI): 1 to 1,024 characters (Web PubSub's limit) of letters,
  digits and `- _ . : @`, starting with a letter or digit, e.g. `conv.<id>.patient`, `agent.<id>`,
  `supervisors`; Web PubSub itself takes any non-blank text, ours is stricter: no spaces, no
  characters that need escaping in a URL path;
- user ids: the same alphabet, 1 to 100 characters (an Entra object id, a dev subject);
- payloads: a JSON object of at most `MAX_PAYLOAD_BYTES` as the SDK serialises it, else
  `PayloadTooLarge`; no NaN or infinity (they are not JSON);
- token lifetime: 1 to 60 minutes.
Errors: `ValueError` for a bad name, `PayloadTooLarge`, `Unavailable` when the service cannot be
reached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from shared.kernel.errors import PayloadTooLarge

MAX_GROUP_LENGTH = 1024
MAX_USER_ID_LENGTH = 100
# Web PubSub refuses a WebSocket frame over 1 MB; a frame is the payload plus its envelope
# (`{"type":"message","from":"group","group":…}`, under 2 KB even with a 1,024-character group).
# Whether "MB" is 10^6 or 2^20 bytes is not stated, so the smaller reading decides.
MAX_PAYLOAD_BYTES = 1_000_000 - 2_048
MIN_TOKEN_MINUTES = 1
MAX_TOKEN_MINUTES = 60
DEFAULT_TOKEN_MINUTES = 5
SUBPROTOCOL = "json.webpubsub.azure.v1"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")


def _name(value: str, longest: int) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= longest and _NAME.fullmatch(value) is not None


def check_group(group: str) -> str:
    if not _name(group, MAX_GROUP_LENGTH):
        raise ValueError(
            f"a group name has 1-{MAX_GROUP_LENGTH} letters, digits or - _ . : @ (first: letter, digit)"
        )
    return group


def check_user_id(user_id: str) -> str:
    if not _name(user_id, MAX_USER_ID_LENGTH):
        raise ValueError(
            f"a user id has 1-{MAX_USER_ID_LENGTH} letters, digits or - _ . : @ (first: letter, digit)"
        )
    return user_id


def check_minutes(minutes: int) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ValueError("token minutes must be a whole number")
    if not MIN_TOKEN_MINUTES <= minutes <= MAX_TOKEN_MINUTES:
        raise ValueError(f"a client URL lives {MIN_TOKEN_MINUTES} to {MAX_TOKEN_MINUTES} minutes")
    return minutes


def encoded_payload(payload: Mapping[str, Any]) -> bytes:
    """The payload as the SDK puts it on the wire (azure-core's `json.dumps` defaults: ASCII, so
    characters are bytes); `PayloadTooLarge` over the limit, ValueError if it is not a JSON object."""
    if not isinstance(payload, Mapping):
        raise ValueError("a real-time payload is a JSON object")
    try:
        text = json.dumps(dict(payload), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError("a real-time payload must be plain JSON (no NaN, no other types)") from exc
    if len(text) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"Real-time payloads are limited to {MAX_PAYLOAD_BYTES} bytes of JSON.")
    return text.encode("ascii")


@runtime_checkable
class Realtime(Protocol):
    async def client_url(
        self, user_id: str, groups: Sequence[str], *, minutes: int = DEFAULT_TOKEN_MINUTES
    ) -> str:
        """A `ws(s)://…/client/hubs/<hub>?access_token=…` URL valid for `minutes`: a connection made
        with it is user `user_id` in exactly `groups`, with no permission to join, leave or send."""
        ...

    async def send_to_group(self, group: str, payload: Mapping[str, Any]) -> None:
        """Push `payload` (a small JSON object) to every connection in `group`, as a
        `{"type":"message","from":"group","group":…,"dataType":"json","data":payload}` frame."""
        ...

    async def add_user_to_group(self, group: str, user_id: str) -> None:
        """Put every connection `user_id` has now into `group` (an agent who accepted a
        conversation); a later connection gets only its own token's groups."""
        ...

    async def remove_user_from_group(self, group: str, user_id: str) -> None:
        """Take every connection of `user_id` out of `group` now (no error if there is none)."""
        ...

    async def ping(self) -> None:
        """Reach the service with our credentials; `Unavailable` if it cannot be reached."""
        ...

    async def close(self) -> None: ...
