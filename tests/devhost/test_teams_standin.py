"""The Teams stand-in the README's walk-through uses: it keeps the cards a Workflows webhook would
take, refuses what Power Automate's trigger would not, and signs a provider's reply as a Teams
outgoing webhook does (the API's own check accepts it)."""

from __future__ import annotations

import httpx

from devhost.teams_standin import TeamsStandIn, signed_activity
from shared.consults.api import Signer, consult_card, verify_signature, workflow_payload
from tests.consults.workflows import TOKEN


async def test_cards_are_kept_and_other_bodies_refused() -> None:
    standin = TeamsStandIn()
    transport = httpx.ASGITransport(app=standin.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as client:
        card = consult_card(
            code="K7M3Q9PX", agent_name="A", question="Q?", urgency=None, specialty=None, reply_to="PSC"
        )
        assert (await client.post("/workflows/cardiology", json=workflow_payload(card))).status_code == 202
        assert (await client.post("/workflows/cardiology", json={"text": "hi"})).status_code == 400
        assert (await client.post("/workflows/cardiology", content=b"nope")).status_code == 400
        assert (await client.get("/_standin/cards")).json() == [workflow_payload(card)]
        refused = await client.post(
            "/_standin/reply", json={"text": "x", "token": TOKEN, "target": "http://example.org/"}
        )
        assert refused.status_code == 400


def test_a_reply_is_signed_as_teams_signs_it() -> None:
    body, headers = signed_activity("K7M3-Q9PX fine", TOKEN)
    import base64

    signer = Signer(base64.b64decode(TOKEN), frozenset({"cardiology"}))
    assert verify_signature(body, headers["Authorization"], [signer]) == {"cardiology"}
    assert b"<at>PSC</at> K7M3-Q9PX fine" in body
