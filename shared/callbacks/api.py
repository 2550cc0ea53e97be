"""The bot-callbacks capability's public module: the URL policy and address guard, the body and
outcome rules, the in-order delivery schedule, and the `events` consumer that drives them."""

from typing import TYPE_CHECKING, Any

from shared.callbacks.policy import (
    AddressRefusal,
    AllowedHost,
    CallbackPolicy,
    CallbackUrlRefused,
    address_refusal,
    callback_body,
    classify_status,
    is_loopback_host,
    normalise_host,
    parse_allowed_hosts,
    parse_retry_after,
)
from shared.callbacks.schedule import CallbackQueue

if TYPE_CHECKING:
    from shared.callbacks.consumer import CallbackConsumer, dead_letters
    from shared.callbacks.documents import CallbackDeadLetter, CallbackState

_CONSUMER = frozenset({"CallbackConsumer", "dead_letters", "CallbackDeadLetter", "CallbackState"})


def __getattr__(name: str) -> Any:
    # The consumer reads conversations and routing: loaded by its trigger and ops, not by every
    # settings check that asks the policy (shared/config.py), so the health path stays light.
    if name in _CONSUMER:
        from shared.callbacks import consumer, documents

        return getattr(consumer, name, None) or getattr(documents, name)
    raise AttributeError(name)


__all__ = [
    "AddressRefusal",
    "AllowedHost",
    "CallbackConsumer",
    "CallbackDeadLetter",
    "CallbackPolicy",
    "CallbackQueue",
    "CallbackState",
    "CallbackUrlRefused",
    "address_refusal",
    "callback_body",
    "classify_status",
    "dead_letters",
    "is_loopback_host",
    "normalise_host",
    "parse_allowed_hosts",
    "parse_retry_after",
]
