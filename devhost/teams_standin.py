"""A recording stand-in for Teams on loopback: a channel's Workflows webhook (cards posted to it are
kept) and the channel's outgoing webhook (a provider's reply, signed as Teams signs it, sent to the
API), so a consult can be walked through on one laptop.

* `POST /workflows/{name}`: what "When a Teams webhook request is received" takes: `{"type":
  "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content":
  <card>}]}`; anything else is a 400 (Power Automate refuses a body its trigger schema does not
  fit). Answers 202, as Power Automate does.
* `GET /_standin/cards`: the payloads received, oldest first.
* `POST /_standin/reply` `{"text", "token", "target"?, "from"?}`: posts a Teams message activity
  whose text @mentions the outgoing webhook (`<at>PSC</at> <text>`) to `target` (default the dev
  host's `http://127.0.0.1:7071/api/teams/consult-replies`; loopback only), signed `Authorization:
  HMAC <base64(HMAC-SHA256(base64-decoded token, body))>`, and answers what the API answered.

    python -m devhost.teams_standin [--port 7073]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CARD = "application/vnd.microsoft.card.adaptive"
DEFAULT_TARGET = "http://127.0.0.1:7071/api/teams/consult-replies"


def signed_activity(text: str, token: str, sender: str = "Dr. Provider") -> tuple[bytes, dict[str, str]]:
    """A Teams outgoing webhook's request: the activity's bytes and its headers."""
    activity = {
        "type": "message",
        "id": str(uuid.uuid4().int)[:13],
        "channelId": "msteams",
        "from": {"id": "29:standin", "name": sender},
        "conversation": {"isGroup": True, "id": "19:standin@thread.tacv2"},
        "text": f"<at>PSC</at> {text}",
        "channelData": {"teamsChannelId": "19:standin@thread.tacv2"},
    }
    body = json.dumps(activity).encode()
    digest = hmac.new(base64.b64decode(token, validate=True), body, hashlib.sha256).digest()
    return body, {
        "Content-Type": "application/json",
        "Authorization": "HMAC " + base64.b64encode(digest).decode(),
    }


class TeamsStandIn:
    def __init__(self) -> None:
        self.cards: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/workflows/{name}", self._workflow, methods=["POST"]),
                Route("/_standin/cards", self._cards, methods=["GET"]),
                Route("/_standin/reply", self._reply, methods=["POST"]),
            ]
        )

    async def _workflow(self, request: Request) -> Response:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        attachments = payload.get("attachments") if isinstance(payload, dict) else None
        if (
            payload.get("type") != "message"
            or not isinstance(attachments, list)
            or not attachments
            or any(not isinstance(a, dict) or a.get("contentType") != CARD for a in attachments)
        ):
            return JSONResponse({"error": "not a Teams message with an Adaptive Card"}, status_code=400)
        self.cards.append(payload)
        return Response(status_code=202)

    async def _cards(self, request: Request) -> Response:
        return JSONResponse(self.cards)

    async def _reply(self, request: Request) -> Response:
        import httpx

        try:
            asked = json.loads(await request.body())
            text, token = str(asked["text"]), str(asked["token"])
            body, headers = signed_activity(text, token, str(asked.get("from") or "Dr. Provider"))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return JSONResponse({"error": 'send {"text", "token"} (token: base64)'}, status_code=400)
        target = str(asked.get("target") or DEFAULT_TARGET)
        if urlsplit(target).hostname not in ("127.0.0.1", "localhost", "::1"):
            return JSONResponse({"error": "replies go to a loopback target only"}, status_code=400)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(target, content=body, headers=headers)
        except httpx.HTTPError as error:
            failure = f"{target} did not answer ({type(error).__name__})"
            return JSONResponse({"error": failure}, status_code=502)
        return Response(
            answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devhost.teams_standin", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=7073)
    args = parser.parse_args(argv)
    import uvicorn

    standin = TeamsStandIn()
    print(
        f"Teams stand-in on http://127.0.0.1:{args.port}: Workflows URL "
        f"http://127.0.0.1:{args.port}/workflows/<name>, cards at /_standin/cards, "
        "replies through POST /_standin/reply"
    )
    asyncio.run(uvicorn.Server(uvicorn.Config(standin.app, host="127.0.0.1", port=args.port)).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
