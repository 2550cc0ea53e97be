"""Route templates read as ASP.NET Core routing (the Functions host) reads them."""

from __future__ import annotations

import azure.functions as func
import pytest

from devhost.errors import StartError
from devhost.routes import RouteTemplate
from tests.devhost.conftest import discovered, new_app


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("patients/{patientId}", "patients/p-1", {"patientId": "p-1"}),
        ("patients/{patientId}", "patients", None),
        ("patients/{patientId}", "patients/p-1/extra", None),
        ("orders/{id:int}", "orders/-5", {"id": "-5"}),
        ("orders/{id:int}", "orders/99999999999", None),  # beyond int32
        ("orders/{id:long}", "orders/99999999999", {"id": "99999999999"}),
        ("flags/{on:bool}", "flags/TRUE", {"on": "TRUE"}),
        ("n/{n:min(1):max(9)}", "n/5", {"n": "5"}),
        ("n/{n:min(1):max(9)}", "n/10", None),
        ("n/{n:range(1,3)}", "n/0", None),
        ("code/{c:length(2)}", "code/ab", {"c": "ab"}),
        ("code/{c:minlength(3)}", "code/ab", None),
        ("code/{c:alpha}", "code/ab1", None),
        ("code/{c:regex(^[a-z]{{2}}$)}", "code/AB", {"c": "AB"}),  # regex constraints ignore case
        ("code/{c:regex(^[a-z]{{2}}$)}", "code/abc", None),
        ("day/{d:datetime}", "day/2026-01-05", {"d": "2026-01-05"}),
        ("price/{p:decimal}", "price/12.50", {"p": "12.50"}),
        ("files/{name}.{ext}", "files/report.final.pdf", {"name": "report.final", "ext": "pdf"}),
        ("files/{name}.{ext?}", "files/readme", {"name": "readme"}),
        ("a/{b?}/{c?}", "a/1", {"b": "1"}),
        ("a/{b?}/{c?}", "a/1/2", {"b": "1", "c": "2"}),
        ("docs/{**path}", "docs/x/y", {"path": "x/y"}),
        ("names/{name}", "names/J%C3%BCrgen", {"name": "Jürgen"}),
    ],
)
def test_templates_match_paths_like_the_functions_host(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


def test_more_specific_templates_take_precedence() -> None:
    ordered = sorted(
        ["things/{*rest}", "things/{id}", "things/{id:int}", "things/{a}.{b}", "things/new"],
        key=lambda t: RouteTemplate.parse(t).precedence,
    )
    assert ordered == ["things/new", "things/{a}.{b}", "things/{id:int}", "things/{id}", "things/{*rest}"]


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("a/{id:nonsense}", "constraint 'nonsense'"),
        ("a/{*rest}/b", "catch-all"),
        ("a/{b?}/c", "optional"),
        ("a/{id}/{ID}", "appears twice"),
        ("a/{id", "unclosed"),
        ("a//b", "empty path segment"),
        ("a/{x}{y}", "literal between"),
    ],
)
def test_bad_templates_fail_at_start_with_the_reason(template: str, complaint: str) -> None:
    with pytest.raises(StartError, match=complaint):
        RouteTemplate.parse(template)


@pytest.mark.parametrize("route", ["admin/queues", "/Admin", "runtime/hooks", "administration", "RUNTIME"])
def test_a_route_the_functions_host_reserves_refuses_to_start_naming_the_function(route: str) -> None:
    app = new_app()

    @app.route(route=route, methods=["GET"])
    def reserved(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("never")

    with pytest.raises(StartError, match=r"function reserved: route .* reserves"):
        discovered(app)
