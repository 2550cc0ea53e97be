"""Secrets port: values written through the API that must never be read back by it (a team's
Workflows URL, which carries its own signature, and its outgoing-webhook token).

Adapters: Azure Key Vault through the managed identity (`shared/adapters/keyvault_secrets.py`,
role Key Vault Secrets Officer: it writes) and, in the embedded default, a file of their own under
PSC_DATA_DIR (`shared/adapters/embedded_secrets.py`: plain text, owner-only; dev only). Names are
what Key Vault accepts: 1-127 letters, digits and dashes (`secret_name` derives them).
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol, runtime_checkable

SECRET_NAME = re.compile(r"^[A-Za-z0-9-]{1,127}$")


def secret_name(kind: str, key: str) -> str:
    """A Key Vault-safe name for `kind` (letters, digits, dashes) of `key` (any id)."""
    if not SECRET_NAME.fullmatch(kind):
        raise ValueError("kind must be letters, digits and dashes")
    return f"psc-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


@runtime_checkable
class Secrets(Protocol):
    async def put(self, name: str, value: str) -> None:
        """Store `value` under `name` (a new version when it exists)."""
        ...

    async def get(self, name: str) -> str | None:
        """The current value, or None when there is none."""
        ...

    async def close(self) -> None: ...


def check_name(name: str) -> str:
    if not SECRET_NAME.fullmatch(name):
        raise ValueError("secret names are 1-127 letters, digits and dashes")
    return name
