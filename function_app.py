"""Composition only: one blueprint per capability module of `functions/`."""

import azure.functions as func

from functions import patients, platform

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(platform.bp)
app.register_functions(patients.bp)
