"""The negotiate endpoints' answer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NegotiateAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    url: str = Field(
        description="`wss://…/client/hubs/<hub>?access_token=…` (`ws://` on the dev host), valid a few "
        "minutes: connect with the `json.webpubsub.azure.v1` subprotocol; ask again to reconnect."
    )
