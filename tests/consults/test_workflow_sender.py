"""Where a Teams card may go: Power Automate's hosts over https, a listed host, a listed loopback
host only in dev mode; never a private, link-local or metadata address, whatever DNS says."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.adapters.workflow_sender import HttpWorkflowPoster
from shared.callbacks.api import CallbackPolicy, parse_allowed_hosts
from shared.consults.api import WorkflowUrlPolicy, WorkflowUrlRefused
from shared.kernel.clock import SystemClock
from tests.callbacks.bot import FixedResolver
from tests.consults.workflows import Workflows


def policy(hosts: str = "", dev: bool = False) -> WorkflowUrlPolicy:
    return WorkflowUrlPolicy(CallbackPolicy(allowed=parse_allowed_hosts(hosts), dev_mode=dev))


@pytest.mark.parametrize(
    "url",
    [
        "https://prod-23.westeurope.logic.azure.com/workflows/1/triggers/manual/paths/invoke?sig=x",
        "https://prod-23.westeurope.logic.azure.com:443/workflows/1",
        "https://default123.45.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/1",
    ],
)
def test_power_automate_workflows_urls_are_accepted(url: str) -> None:
    assert policy().check_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://prod-23.westeurope.logic.azure.com/workflows/1", "https-required"),
        ("https://prod-23.westeurope.logic.azure.com:8443/workflows/1", "port-not-allowed"),
        ("https://logic.azure.com.evil.example/workflows/1", "host-not-allowed"),
        ("https://evillogic.azure.com/workflows/1", "host-not-allowed"),
        ("https://a@prod-23.westeurope.logic.azure.com/x", "userinfo"),
        ("https://prod-23.westeurope.logic.azure.com/x#frag", "fragment"),
        ("http://127.0.0.1:7073/workflows/1", "https-required"),
        ("ftp://prod-23.westeurope.logic.azure.com/x", "scheme"),
    ],
)
def test_other_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(WorkflowUrlRefused) as refused:
        policy().check_url(url)
    assert refused.value.reason == reason
    assert url not in str(refused.value)


def test_a_listed_loopback_host_is_reachable_over_http_in_dev_mode_only() -> None:
    url = "http://127.0.0.1:7073/workflows/1?sig=x"
    assert policy("127.0.0.1", dev=True).check_url(url) == url
    with pytest.raises(WorkflowUrlRefused):
        policy("127.0.0.1", dev=False).check_url(url)


@pytest.fixture
async def endpoint() -> AsyncIterator[Workflows]:
    workflows = Workflows()
    await workflows.start()
    yield workflows
    await workflows.close()


async def test_a_host_resolving_to_a_private_address_is_never_dialled(endpoint: Workflows) -> None:
    resolver = FixedResolver(lambda host: ["10.0.0.7"])
    poster = HttpWorkflowPoster(policy("teams.example.org"), SystemClock(), resolver=resolver)
    try:
        result = await poster.post("https://teams.example.org/workflows/1", {"type": "message"})
    finally:
        await poster.close()
    assert (result.ok, result.reason) == (False, "address-refused")
    assert endpoint.seen == []


async def test_a_card_reaches_a_listed_loopback_endpoint_in_dev_mode(endpoint: Workflows) -> None:
    assert endpoint._server is not None
    url = f"http://127.0.0.1:{endpoint._server.port}/workflows/1?sig=x"
    poster = HttpWorkflowPoster(policy("127.0.0.1", dev=True), SystemClock())
    try:
        assert (await poster.post(url, {"type": "message", "attachments": []})).ok
        refused = await HttpWorkflowPoster(policy("127.0.0.1"), SystemClock()).post(url, {"type": "message"})
    finally:
        await poster.close()
    assert refused.reason == "url-refused"
    assert endpoint.seen == [{"type": "message", "attachments": []}]
