"""HTTP triggers behave as under the Functions host: routing, methods, request and response."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import azure.functions as func
import pytest

from devhost.errors import StartError
from devhost.http_host import request_body_limit
from shared.runtime import Runtime, get_runtime
from tests.devhost.conftest import discovered, http_client, new_app

SAMPLE_VALUES = json.loads((Path(__file__).parents[2] / "local.settings.sample.json").read_text())["Values"]


def echo_app() -> func.FunctionApp:
    app = new_app()

    @app.route(route="patients/{patientId}", methods=["GET"])
    async def get_patient(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    @app.route(route="orders/{id:int}", methods=["GET"])
    async def get_order(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    @app.route(route="items/{id:guid}", methods=["GET"])
    async def get_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    @app.route(route="slots/{day?}", methods=["GET"])
    async def list_slots(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    @app.route(route="pages/{size=20}", methods=["GET"])
    async def list_pages(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    @app.route(route="files/{*rest}", methods=["GET"])
    async def get_file(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    @app.route(route="echo/{name}", methods=["POST", "PUT"])
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen = {
            "method": req.method,
            "url": req.url,
            "params": dict(req.params),
            "route": dict(req.route_params),
            "contentType": req.headers.get("content-type"),
            "custom": req.headers.get("X-Custom"),
            "body": req.get_body().hex(),
        }
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")

    @app.route()
    def nameless(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("by name")

    return app


async def test_route_parameters_reach_the_function_by_template_name() -> None:
    async with http_client(echo_app()) as client:
        answer = await client.get("/api/patients/p-42")
    assert answer.status_code == 200
    assert answer.json() == {"patientId": "p-42"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("patients/{patientId}", "patients/me"),
        ("files/{*rest}", "files/a/b"),
        ("slots/{day?}", "slots"),
        ("orders/{id:int}", "orders/{name}"),
        ("things/{a}.{b}", "things/new.json"),
    ],
)
def test_routes_that_could_both_answer_one_path_refuse_to_start(first: str, second: str) -> None:
    """The Functions host picks between overlapping routes by function name, not by specificity
    (azure-functions-host#9876), so the dev host refuses them instead of guessing."""
    app = new_app()

    @app.route(route=first, methods=["GET"])
    def one(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("one")

    @app.route(route=second, methods=["GET", "POST"])
    def two(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("two")

    with pytest.raises(StartError, match=r"functions one and two: .* for GET; the Functions host would pick"):
        discovered(app)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("orders/{id:int}", "orders/new"),
        ("patients/{patientId}", "patients/{patientId}/notes"),
        ("agents/me", "manage/agents/{agentId}"),
    ],
)
def test_disjoint_routes_or_disjoint_methods_start(first: str, second: str) -> None:
    app = new_app()

    @app.route(route=first, methods=["GET"])
    def one(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("one")

    @app.route(route=second, methods=["GET"])
    def two(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("two")

    @app.route(route=first, methods=["DELETE"])
    def three(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("three")

    assert len(discovered(app).http) == 3


async def test_literals_and_prefix_match_case_insensitively_and_a_trailing_slash_is_ignored() -> None:
    async with http_client(echo_app()) as client:
        answer = await client.get("/API/Patients/p-1/")
    assert answer.json() == {"patientId": "p-1"}


async def test_int_and_guid_constraints_turn_other_values_into_404() -> None:
    async with http_client(echo_app()) as client:
        ok = await client.get("/api/orders/17")
        not_int = await client.get("/api/orders/seventeen")
        guid = await client.get("/api/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        not_guid = await client.get("/api/items/nope")
    assert ok.json() == {"id": "17"}
    assert not_int.status_code == 404
    assert guid.status_code == 200
    assert not_guid.status_code == 404


async def test_optional_parameter_may_be_left_out_and_defaults_fill_in() -> None:
    async with http_client(echo_app()) as client:
        without = await client.get("/api/slots")
        with_day = await client.get("/api/slots/2026-01-05")
        defaulted = await client.get("/api/pages")
    assert without.json() == {}
    assert with_day.json() == {"day": "2026-01-05"}
    assert defaulted.json() == {"size": "20"}


async def test_catch_all_takes_the_rest_of_the_path_decoded() -> None:
    async with http_client(echo_app()) as client:
        answer = await client.get("/api/files/a/b%20c/d.txt")
    assert answer.json() == {"rest": "a/b c/d.txt"}


async def test_function_without_route_is_served_under_its_name() -> None:
    async with http_client(echo_app()) as client:
        answer = await client.get("/api/nameless")
    assert answer.text == "by name"


async def test_unknown_path_is_a_404_problem_shaped_as_the_apps_own() -> None:
    async with http_client(echo_app()) as client:
        unknown = await client.get("/api/nothing/here")
        outside_prefix = await client.get("/patients/p-1")
        traced = await client.get("/api/nothing", headers={"x-correlation-id": "trace-0001"})
    for answer in (unknown, outside_prefix, traced):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem == {
            "type": "urn:psc:problem:not-found",
            "title": "Not found",
            "status": 404,
            "detail": "No function matches this path.",
            "correlationId": answer.headers["x-correlation-id"],
        }
    assert traced.json()["correlationId"] == "trace-0001"


async def test_known_path_with_wrong_method_is_a_405_problem_listing_allowed_methods() -> None:
    async with http_client(echo_app()) as client:
        answer = await client.delete("/api/echo/x")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["allow"] == "POST, PUT"
    problem = answer.json()
    assert problem["status"] == 405
    assert problem["type"] == "urn:psc:problem:method-not-allowed"
    assert problem["title"] == "Method not allowed"
    assert problem["correlationId"] == answer.headers["x-correlation-id"]


async def test_query_headers_url_and_raw_body_pass_through_unchanged() -> None:
    raw = b"\x00\xffnot json at all\r\n"
    async with http_client(echo_app()) as client:
        answer = await client.post(
            "/api/echo/bob?x=1&x=2&y=three",
            content=raw,
            headers={"Content-Type": "application/octet-stream", "X-Custom": "yes"},
        )
    seen = answer.json()
    assert seen["method"] == "POST"
    assert seen["url"] == "http://testserver/api/echo/bob?x=1&x=2&y=three"
    assert seen["params"] == {"x": "2", "y": "three"}  # Azure keeps the last value per key
    assert seen["route"] == {"name": "bob"}
    assert seen["contentType"] == "application/octet-stream"
    assert seen["custom"] == "yes"
    assert bytes.fromhex(seen["body"]) == raw


async def test_response_status_headers_and_mimetype_reach_the_client() -> None:
    app = new_app()

    @app.route(route="made", methods=["POST"])
    async def made(req: func.HttpRequest) -> func.HttpResponse:
        response = func.HttpResponse("créé", status_code=201, mimetype="text/plain", charset="utf-8")
        response.headers["Location"] = "/api/made/1"
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    @app.route(route="bin", methods=["GET"])
    async def binary(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(b"\x01\x02", mimetype="application/octet-stream")

    @app.route(route="typed", methods=["GET"])
    async def typed(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            "{}", headers={"Content-Type": "application/fhir+json", "Content-Length": "999"}
        )

    @app.route(route="gone", methods=["DELETE"])
    async def gone(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @app.route(route="plain", methods=["GET"])
    async def plain(req: func.HttpRequest) -> str:
        return "just text"

    async with http_client(app) as client:
        created = await client.post("/api/made")
        binary_answer = await client.get("/api/bin")
        typed_answer = await client.get("/api/typed")
        no_content = await client.delete("/api/gone")
        text = await client.get("/api/plain")

    assert created.status_code == 201
    assert created.headers["location"] == "/api/made/1"
    assert created.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert created.headers["content-type"] == "text/plain; charset=utf-8"
    assert created.content == "créé".encode()
    assert binary_answer.headers["content-type"] == "application/octet-stream"
    assert binary_answer.content == b"\x01\x02"
    assert typed_answer.headers["content-type"] == "application/fhir+json"
    assert typed_answer.headers["content-length"] == "2"  # the real length, not the function's
    assert no_content.status_code == 204
    assert no_content.content == b""
    assert text.status_code == 200
    assert text.text == "just text"


async def test_sync_handlers_run_off_the_event_loop_and_async_ones_on_it() -> None:
    app = new_app()
    loop_thread = threading.get_ident()

    @app.route(route="sync", methods=["GET"])
    def sync_handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(str(threading.get_ident() == loop_thread))

    @app.route(route="async", methods=["GET"])
    async def async_handler(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(0)
        return func.HttpResponse(str(threading.get_ident() == loop_thread))

    async with http_client(app) as client:
        sync_answer = await client.get("/api/sync")
        async_answer = await client.get("/api/async")
    assert sync_answer.text == "False"
    assert async_answer.text == "True"


async def test_functions_see_the_host_runtime_in_async_and_sync_handlers(runtime: Runtime) -> None:
    app = new_app()

    @app.route(route="async-rt", methods=["GET"])
    async def async_rt(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(str((await get_runtime()) is runtime))

    @app.route(route="sync-rt", methods=["GET"])
    def sync_rt(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(str(asyncio.run(get_runtime()) is runtime))

    async with http_client(app, runtime=runtime) as client:
        assert (await client.get("/api/async-rt")).text == "True"
        assert (await client.get("/api/sync-rt")).text == "True"


async def test_an_escaping_exception_is_a_500_problem_with_correlation_id_and_no_internals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = new_app()

    @app.route(route="boom", methods=["GET"])
    async def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError(f"patient {req.params['name']}, secret internals")

    caplog.set_level(logging.INFO, logger="psc.devhost")
    async with http_client(app) as client:
        answer = await client.get("/api/boom?name=Jane+Roe")
        with_given_id = await client.get("/api/boom?name=Jane+Roe", headers={"x-correlation-id": "corr-123"})

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    correlation_id = problem["correlationId"]
    assert problem["status"] == 500
    assert correlation_id
    assert answer.headers["x-correlation-id"] == correlation_id
    assert "internals" not in answer.text
    assert "RuntimeError" not in answer.text
    assert with_given_id.json()["correlationId"] == "corr-123"
    logged = caplog.text
    assert correlation_id in logged
    assert "corr-123" in logged
    assert "RuntimeError" in logged  # the type and stack help the developer
    assert "Jane Roe" not in logged  # the message may carry PHI


async def test_returning_something_that_is_not_a_response_is_a_500() -> None:
    app = new_app()

    @app.route(route="none", methods=["GET"])
    async def returns_none(req: func.HttpRequest) -> func.HttpResponse:
        return None  # type: ignore[return-value]

    async with http_client(app) as client:
        answer = await client.get("/api/none")
    assert answer.status_code == 500
    assert "correlationId" in answer.json()


async def test_context_parameter_receives_the_invocation_context() -> None:
    app = new_app()

    @app.route(route="ctx", methods=["GET"])
    async def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse(f"{context.function_name}:{len(context.invocation_id)}")

    async with http_client(app) as client:
        answer = await client.get("/api/ctx")
    assert answer.text == "with_context:32"


async def test_route_prefix_comes_from_host_config() -> None:
    app = new_app()

    @app.route(route="ping", methods=["GET"])
    async def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("pong")

    async with http_client(app, route_prefix="") as client:
        assert (await client.get("/ping")).text == "pong"
        assert (await client.get("/api/ping")).status_code == 404


async def test_a_body_over_the_host_limit_is_413_without_calling_the_function() -> None:
    app = new_app()
    calls: list[int] = []

    @app.route(route="upload", methods=["POST"])
    async def upload(req: func.HttpRequest) -> func.HttpResponse:
        calls.append(1)
        return func.HttpResponse("stored")

    async with http_client(app, max_request_bytes=10) as client:
        answer = await client.post("/api/upload", content=b"x" * 11)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert calls == []


async def test_a_streamed_body_is_refused_at_the_limit_not_read_to_its_end() -> None:
    app = new_app()

    @app.route(route="upload", methods=["POST"])
    async def upload(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("stored")

    chunk = 64 * 1024
    sent: list[int] = []

    async def hundred_megabytes() -> AsyncIterator[bytes]:
        for _ in range(100 * 1024 * 1024 // chunk):
            sent.append(chunk)
            yield b"x" * chunk

    async with http_client(app, max_request_bytes=request_body_limit(SAMPLE_VALUES)) as client:
        answer = await client.post("/api/upload", content=hundred_megabytes())
        declared = await client.post(
            "/api/upload", content=b"x", headers={"content-length": str(100 * 1024 * 1024)}
        )
    assert answer.status_code == 413
    assert sum(sent) <= 256 * 1024 + chunk  # stopped one chunk past 256 KiB, not at 100 MB
    assert declared.status_code == 413


@pytest.mark.parametrize(
    ("value", "limit"),
    [("262144", 262144), (None, 100 * 1024 * 1024), ("", 100 * 1024 * 1024), ("lots", 100 * 1024 * 1024)],
)
def test_the_body_limit_follows_the_hosts_app_setting(value: str | None, limit: int) -> None:
    environ = {} if value is None else {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": value}
    assert request_body_limit(environ) == limit


async def test_each_invocation_logs_one_line_with_ids_and_timing_but_no_request_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = new_app()

    @app.route(route="notes/{noteId}", methods=["POST"])
    async def add_note(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok", status_code=201, headers={"x-correlation-id": "from-function"})

    caplog.set_level(logging.INFO, logger="psc.devhost")
    async with http_client(app) as client:
        await client.post(
            "/api/notes/n-1?q=Jane+Roe",
            content=b'{"text": "chest pain since Tuesday"}',
            headers={"X-Patient-Name": "Jane Roe"},
        )
    lines = [r for r in caplog.records if r.getMessage().startswith("invocation ")]
    assert len(lines) == 1
    record = lines[0]
    message = record.getMessage()
    assert "function=add_note" in message
    assert "trigger=http" in message
    assert "outcome=201" in message
    assert "duration_ms=" in message
    assert "correlation_id=from-function" in message
    assert record.__dict__["status"] == 201
    assert "Jane" not in caplog.text
    assert "chest pain" not in caplog.text
