"""Event Grid triggers through the host's webhook, as Core Tools serves it for local testing:
`POST /runtime/webhooks/EventGrid?functionName=<name>`, the validation handshakes answered, one
invocation per event in the Event Grid schema or CloudEvents 1.0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import azure.functions as func
import httpx
import pytest

from devhost.host import DevHost
from devhost.invocation import Invoker
from shared.kernel.clock import ManualClock
from tests.devhost.conftest import discovered, new_app

WEBHOOK = "/runtime/webhooks/EventGrid"
NOTIFY = {"aeg-event-type": "Notification", "content-type": "application/json"}


def grid_event(
    n: int, event_type: str = "Microsoft.Communication.SMSDeliveryReportReceived"
) -> dict[str, object]:
    return {
        "id": f"ev-{n}",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Communication/acs",
        "subject": f"/phonenumber/{n}",
        "eventType": event_type,
        "eventTime": "2026-01-05T09:00:00Z",
        "data": {"messageId": f"m-{n}", "deliveryStatus": "Delivered"},
        "dataVersion": "1.0",
    }


class Reports:
    def __init__(self) -> None:
        self.events: list[object] = []
        self.fail_ids: set[str] = set()

    def app(self) -> func.FunctionApp:
        app = new_app()

        @app.event_grid_trigger(arg_name="event")
        async def delivery_reports(event: func.EventGridEvent) -> None:
            self.events.append(event)
            if event.id in self.fail_ids:
                raise RuntimeError("cannot record the report")

        @app.route(route="ping")
        def ping(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("pong")

        return app


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture
async def client(reports: Reports) -> AsyncIterator[httpx.AsyncClient]:
    host = DevHost(discovered(reports.app()), clock=ManualClock(), invoker=Invoker(), receiver=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=host.asgi_app), base_url="http://testserver"
    ) as c:
        yield c


async def post(
    client: httpx.AsyncClient, body: object, headers: dict[str, str] = NOTIFY, name: str = "delivery_reports"
) -> httpx.Response:
    return await client.post(
        WEBHOOK, params={"functionName": name}, content=json.dumps(body), headers=headers
    )


async def test_each_event_of_a_delivery_invokes_the_function_once_as_an_event_grid_event(
    client: httpx.AsyncClient, reports: Reports
) -> None:
    response = await post(client, [grid_event(1), grid_event(2)])

    assert response.status_code == 202
    assert sorted(e.id for e in reports.events) == ["ev-1", "ev-2"]  # type: ignore[attr-defined]
    first = next(e for e in reports.events if e.id == "ev-1")  # type: ignore[attr-defined]
    assert isinstance(first, func.EventGridEvent)
    assert first.event_type == "Microsoft.Communication.SMSDeliveryReportReceived"
    assert first.get_json() == {"messageId": "m-1", "deliveryStatus": "Delivered"}
    assert first.subject == "/phonenumber/1"
    assert first.event_time is not None


async def test_a_cloud_event_is_handed_over_as_a_cloud_event(
    client: httpx.AsyncClient, reports: Reports
) -> None:
    cloud_event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/acs",
        "type": "Microsoft.Communication.SMSReceived",
        "time": "2026-01-05T09:00:00Z",
        "data": {"from": "+15550100"},
    }

    response = await post(client, cloud_event)

    assert response.status_code == 202
    (event,) = reports.events
    assert isinstance(event, func.CloudEvent)
    assert event.type == "Microsoft.Communication.SMSReceived"


async def test_the_subscription_validation_handshake_is_answered_without_invoking(
    client: httpx.AsyncClient, reports: Reports
) -> None:
    handshake = [
        {
            "id": "v-1",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
            "dataVersion": "2",
        }
    ]

    response = await post(client, handshake, {"aeg-event-type": "SubscriptionValidation"})

    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert reports.events == []


async def test_the_cloud_events_abuse_protection_handshake_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.options(
        WEBHOOK,
        params={"functionName": "delivery_reports"},
        headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
    )

    assert response.status_code == 200
    assert response.headers["webhook-allowed-origin"] == "eventgrid.azure.net"


async def test_a_failing_invocation_makes_the_delivery_fail_so_event_grid_retries_it(
    client: httpx.AsyncClient, reports: Reports
) -> None:
    reports.fail_ids = {"ev-2"}

    response = await post(client, [grid_event(1), grid_event(2)])

    assert response.status_code == 500
    assert len(reports.events) == 2


@pytest.mark.parametrize(
    ("headers", "name", "status"),
    [
        ({}, "delivery_reports", 400),
        ({"aeg-event-type": "Unsubscribe"}, "delivery_reports", 202),
        (NOTIFY, "nope", 404),
    ],
)
async def test_deliveries_the_host_refuses_invoke_nothing(
    client: httpx.AsyncClient, reports: Reports, headers: dict[str, str], name: str, status: int
) -> None:
    response = await post(client, [grid_event(1)], headers, name)

    assert response.status_code == status
    assert reports.events == []


async def test_the_webhook_sits_beside_the_apps_routes_and_the_banner_shows_it(reports: Reports) -> None:
    host = DevHost(discovered(reports.app()), clock=ManualClock(), invoker=Invoker(), receiver=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=host.asgi_app), base_url="http://t"
    ) as client:
        assert (await client.get("/api/ping")).text == "pong"
        assert (await client.get("/runtime/webhooks/other")).status_code == 404

    banner = host.banner("http://127.0.0.1:7071")
    assert (
        "delivery_reports: eventGridTrigger (POST http://127.0.0.1:7071/runtime/webhooks/EventGrid"
        "?functionName=delivery_reports)"
    ) in banner
