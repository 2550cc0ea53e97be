"""Communication Services in the Bicep: keys off, e-mail without tracking, the app sending with
its identity, and the Event Grid subscription that brings delivery reports and inbound SMS to the
catalogue's reports queue with the system topic's own identity, allowed to send to that queue
only."""

from __future__ import annotations

import json

from shared.kernel.catalog import QUEUES
from shared.notifications.reports import EVENT_TYPES
from tests.infra.bicep import (
    INFRA,
    MAIN,
    main_params_for,
    module_path,
    modules,
    parameters,
    render,
    resource,
    resources,
    variable,
)
from tests.infra.test_templates import app_settings, bicepparam, props

PATH = module_path("communication")


def test_the_communication_service_takes_no_keys_and_links_the_managed_domain() -> None:
    acs = resource(PATH, "Microsoft.Communication/communicationServices")
    assert acs.body["location"] == "global"
    assert props(acs)["disableLocalAuth"] is True
    assert render(props(acs)["dataLocation"]) == "dataLocation"
    assert render(props(acs)["linkedDomains"]) == (
        "useCustomDomain ? [managedDomain.id, customDomain.id] : [managedDomain.id]"
    )
    assert render(main_params_for("communication")["dataLocation"]) == "communicationDataLocation"


def test_email_domains_track_nothing() -> None:
    domains = resources(PATH, "Microsoft.Communication/emailServices/domains")
    assert {render(d.body["name"]) for d in domains} >= {"AzureManagedDomain"}
    assert all(props(d)["userEngagementTracking"] == "Disabled" for d in domains)
    managed = next(d for d in domains if d.body["name"] == "AzureManagedDomain")
    assert props(managed)["domainManagement"] == "AzureManaged"


def test_reports_reach_the_catalogue_queue_with_the_topics_own_identity() -> None:
    topic = resource(PATH, "Microsoft.EventGrid/systemTopics")
    assert topic.body["identity"] == {"type": "SystemAssigned"}
    assert render(props(topic)["source"]) == "communication.id"
    assert props(topic)["topicType"] == "Microsoft.Communication.CommunicationServices"
    subscription = resource(PATH, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
    delivery = props(subscription)["deliveryWithResourceIdentity"]
    assert delivery["identity"] == {"type": "SystemAssigned"}
    assert delivery["destination"]["endpointType"] == "ServiceBusQueue"
    assert render(delivery["destination"]["properties"]["resourceId"]) == "reportsQueue.id"
    assert props(subscription)["eventDeliverySchema"] == "EventGridSchema"
    assert render(props(subscription)["filter"]["includedEventTypes"]) == "reportEventTypes"
    assert tuple(variable(PATH, "reportEventTypes")) == EVENT_TYPES  # what the parser reads
    assert "destination" not in props(subscription)  # no key-based delivery beside the identity's


def test_the_topic_may_send_to_the_reports_queue_and_nothing_else() -> None:
    sends = [
        a
        for a in resources(PATH, "Microsoft.Authorization/roleAssignments")
        if "serviceBusDataSender" in render(a.body["properties"]["roleDefinitionId"])
    ]
    assert len(sends) == 1
    assert render(sends[0].body["scope"]) == "reportsQueue"
    assert render(sends[0].body["properties"]["principalId"]) == "systemTopic.identity.principalId"
    queue = resource(PATH, "Microsoft.ServiceBus/namespaces/queues")
    assert queue.body["name"] == "reportsQueueName"


def test_the_reports_queue_is_the_catalogues_and_event_grid_can_deliver_to_it() -> None:
    spec = QUEUES["notification-reports"]
    assert spec.setting == "NOTIFICATION_REPORTS_QUEUE"
    catalog = {q["setting"]: q for q in json.loads((INFRA / "catalog.json").read_text())["queues"]}
    assert catalog["NOTIFICATION_REPORTS_QUEUE"]["name"] == "notification-reports"
    # Event Grid cannot deliver to a session-enabled queue; the module never enables sessions.
    assert "requiresSession: false" in module_path("servicebus").read_text()
    assert main_params_for("communication")["reportsQueueName"] == "reportsQueueName"
    assert "NOTIFICATION_REPORTS_QUEUE" in render(variable(MAIN, "reportsQueueName"))


def test_the_app_sends_through_acs_with_its_identity() -> None:
    settings = app_settings()
    assert settings["PSC_NOTIFY"] == "acs"
    assert settings["ACS__endpoint"] == "communication.outputs.endpoint"
    assert settings["ACS_EMAIL_SENDER"] == "communication.outputs.emailSender"
    assert settings["ACS_SMS_FROM"] == "acsSmsSender"
    assert render(main_params_for("communication")["appPrincipalId"]) == "identity.outputs.principalId"
    assert parameters(MAIN)["acsSmsSender"]["default"] == ""
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["acsSmsSender"]["value"] == "${PSC_ACS_SMS_FROM}"
    for name in ("main.dev.bicepparam", "main.prod.bicepparam"):
        assert bicepparam(name)["acsSmsSender"] == "readEnvironmentVariable('PSC_ACS_SMS_FROM', '')"
    assert "communication" in modules()
