"""The bot-callbacks capability's public module: the URL policy and address guard, the body and
outcome rules, and the in-order delivery schedule (the consumer that drives them comes next)."""

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

__all__ = [
    "AddressRefusal",
    "AllowedHost",
    "CallbackPolicy",
    "CallbackQueue",
    "CallbackUrlRefused",
    "address_refusal",
    "callback_body",
    "classify_status",
    "is_loopback_host",
    "normalise_host",
    "parse_allowed_hosts",
    "parse_retry_after",
]
