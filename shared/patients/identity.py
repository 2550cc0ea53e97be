"""How a patient's sign-in is linked to their record: the HTTP shapes of
`POST /api/patients/{patientId}/link-codes` and `POST /api/me/link`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.kernel.text import Line


class _Model(BaseModel):
    # defer_build: validators are compiled on first use, not while the worker indexes functions.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class LinkCode(_Model):
    """A one-time code that links a patient's sign-in to their record: single use, 24 hours."""

    code: str = Field(examples=["7KQ2M9XH4T"], description="10 characters of Crockford base32.")
    expiresAt: datetime


class LinkRequest(_Model):
    code: Line = Field(
        min_length=1,
        max_length=32,
        examples=["7KQ2M-9XH4T"],
        description="The code from the service center; case, hyphens and spaces do not matter.",
    )


class Link(_Model):
    patientId: str
