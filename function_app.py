"""Composition only: one blueprint per capability module of `functions/`."""

import azure.functions as func

from functions import (
    appointments,
    callbacks,
    consults,
    conversations,
    dashboard,
    escalations,
    events,
    exports,
    fhir,
    followups,
    history,
    identity,
    knowledge,
    kpis,
    live,
    messages,
    patient_conversations,
    patients,
    platform,
    providers,
    records,
    routing,
    routing_admin,
    transcripts,
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
app.register_functions(callbacks.bp)
app.register_functions(events.bp)
app.register_functions(transcripts.bp)
app.register_functions(patient_conversations.bp)
app.register_functions(history.bp)
app.register_functions(kpis.bp)
app.register_functions(live.bp)
app.register_functions(exports.bp)
app.register_functions(followups.bp)
