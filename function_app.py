"""Composition only: one blueprint per capability module of `functions/`."""

import azure.functions as func

from functions import (
    appointments,
    consults,
    conversations,
    dashboard,
    escalations,
    events,
    fhir,
    followups,
    identity,
    knowledge,
    messages,
    patients,
    platform,
    providers,
    records,
    routing,
    routing_admin,
    workspace,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(platform.bp)
app.register_functions(patients.bp)
app.register_functions(identity.bp)
app.register_functions(routing_admin.bp)
app.register_functions(conversations.bp)
app.register_functions(messages.bp)
app.register_functions(routing.bp)
app.register_functions(providers.bp)
app.register_functions(appointments.bp)
app.register_functions(fhir.bp)
app.register_functions(escalations.bp)
app.register_functions(dashboard.bp)
app.register_functions(knowledge.bp)
app.register_functions(workspace.bp)
app.register_functions(consults.bp)
app.register_functions(records.bp)
app.register_functions(events.bp)
app.register_functions(followups.bp)
