"""The app under the end-to-end bench: the real function app plus one bare HTTP function, so the
bench can compare an escalation with the host's own floor on the same host in the same run."""

from __future__ import annotations

import azure.functions as func

from function_app import app


@app.route(route="bench/ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def bench_ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
