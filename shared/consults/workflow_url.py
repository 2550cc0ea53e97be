"""Which Workflows URLs a team may name, and so which hosts a Teams card may be posted to.

A Workflows webhook URL is Power Automate's: `https://<region>.logic.azure.com/workflows/…` or,
for newer flows, `https://<environment>.environment.api.powerplatform.com/powerautomate/…`
(verified by reading Microsoft's Teams and Power Automate pages and published migration guides,
not against a tenant). Accepted: https on the default port to a host under one of those domains,
or a host listed in PSC_TEAMS_WORKFLOW_HOSTS (the bot-callback entry rules: `host`, `host:port`,
`*.domain`; in dev mode a listed loopback host also over http, on any port: the recorded stand-in
of the tests and the README). No user info, no fragment, at most 2,048 characters. The address
guard at connect time is the bot callbacks' (shared/adapters/workflow_sender.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.callbacks.api import CallbackPolicy, CallbackUrlRefused, normalise_host, parse_allowed_hosts

if TYPE_CHECKING:
    from shared.config import Settings

WORKFLOW_DOMAINS = ("logic.azure.com", "api.powerplatform.com")

_MESSAGES = {
    "malformed": "must be an absolute https URL",
    "too-long": "must be at most 2048 characters",
    "scheme": "must be an https URL",
    "https-required": "must use https (http only for a listed loopback host in dev mode)",
    "userinfo": "must not carry a user name or password",
    "fragment": "must not carry a fragment (#...)",
    "host-not-allowed": "host must be a Power Automate Workflows host (*.logic.azure.com, "
    "*.api.powerplatform.com) or listed in PSC_TEAMS_WORKFLOW_HOSTS",
    "port-not-allowed": "port is not allowed for this host",
    "address-refused": "must not name a private, loopback, link-local or reserved address",
}


class WorkflowUrlRefused(ValueError):
    """A fixed rule, fit for a 400 field error; never repeats the URL (it carries a signature)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"workflowUrl {_MESSAGES.get(reason, 'is not allowed')}")
        self.reason = reason


@dataclass(frozen=True)
class WorkflowUrlPolicy:
    listed: CallbackPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkflowUrlPolicy:
        return cls(
            CallbackPolicy(
                allowed=parse_allowed_hosts(settings.teams_workflow_hosts or ""),
                dev_mode=settings.auth_mode == "dev",
            )
        )

    @property
    def dev_mode(self) -> bool:
        return self.listed.dev_mode

    def check_url(self, text: str) -> str:
        """The URL to post to, or `WorkflowUrlRefused`."""
        try:
            return self.listed.check_url(text)
        except CallbackUrlRefused as refused:
            if refused.reason != "host-not-allowed":
                raise WorkflowUrlRefused(refused.reason) from None
        # Every rule before the host passed (scheme, user info, fragment, length): the host may
        # still be under Power Automate's own domains, on the default port.
        from yarl import URL

        url = URL(text)
        host = normalise_host(url.raw_host or "")
        if url.scheme != "https" or url.explicit_port not in (None, 443):
            raise WorkflowUrlRefused("port-not-allowed")
        if not any(host.endswith("." + domain) for domain in WORKFLOW_DOMAINS):
            raise WorkflowUrlRefused("host-not-allowed")
        return text
