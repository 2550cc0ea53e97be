"""A recording Teams Workflows endpoint on loopback (what a channel's "When a Teams webhook request
is received" trigger stands for in tests) and a Teams outgoing webhook's signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = base64.b64encode(b"team-cardiology-outgoing-token-0123").decode()
OTHER_TOKEN = base64.b64encode(b"team-billing-outgoing-token-456789").decode()


def sign(body: bytes, token: str = TOKEN) -> str:
    """`Authorization` as a Teams outgoing webhook sends it."""
    digest = hmac.new(base64.b64decode(token), body, hashlib.sha256).digest()
    return "HMAC " + base64.b64encode(digest).decode()


def activity(text: str, activity_id: str = "1700000000001", name: str = "Dr Nowak") -> dict[str, Any]:
    return {
        "type": "message",
        "id": activity_id,
        "timestamp": "2026-01-05T09:00:00.000Z",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "channelId": "msteams",
        "from": {"id": "29:1abc", "name": name, "aadObjectId": "00000000-0000-0000-0000-0000000000aa"},
        "conversation": {"isGroup": True, "id": "19:abc@thread.tacv2;messageid=1700000000000", "name": None},
        "recipient": None,
        "textFormat": "plain",
        "attachmentLayout": None,
        "membersAdded": [],
        "membersRemoved": [],
        "topicName": None,
        "historyDisclosed": None,
        "locale": "en-US",
        "text": f"<at>PSC</at> {text}",
        "attachments": [{"contentType": "text/html", "content": f"<div><at>PSC</at> {text}</div>"}],
        "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web"}],
        "channelData": {
            "teamsChannelId": "19:abc@thread.tacv2",
            "teamsTeamId": "19:team@thread.tacv2",
            "channel": {"id": "19:abc@thread.tacv2"},
            "team": {"id": "19:team@thread.tacv2"},
            "tenant": {"id": "00000000-0000-0000-0000-0000000000bb"},
        },
        "replyToId": None,
        "value": None,
        "name": None,
        "action": None,
    }


@dataclass
class Workflows:
    """Answers `status` (202, as Power Automate does) and keeps every request."""

    status: int = 202
    seen: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    _server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path_qs)
        self.seen.append(json.loads(await request.read()))
        return web.Response(status=self.status)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return f"http://127.0.0.1:{self._server.port}/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t"

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
