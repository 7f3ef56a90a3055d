"""The OpenAPI document must describe exactly the routes and methods the app serves."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.constants
import falcon.routing
import pytest
from falcon import testing

from draas_actors.api import resources
from draas_actors.api.app import Route, create_app, routes
from draas_actors.api.openapi import OPERATIONS, build_openapi
from draas_actors.security import ADMIN, OPERATE, PUBLIC, PUSH, READ, READ_OR_PUSH
from draas_actors.system import ControlPlane
from tests.helpers import unstarted_control_plane

App = falcon.App[falcon.Request, falcon.Response]
HTTP_METHODS = {m.lower() for m in falcon.constants.COMBINED_METHODS}
OPENAPI_PATH = "/api/openapi.json"
EXPECTED_PUBLIC = {"/healthz", "/readyz", OPENAPI_PATH}


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    # Never started: building the app and serving the document need no actors.
    with unstarted_control_plane(tmp_path) as cp:
        yield cp


@pytest.fixture
def app(control_plane: ControlPlane) -> App:
    return create_app(control_plane, daemon_keys=("d" * 20,), operator_keys=("o" * 20,))


@pytest.fixture
def table(control_plane: ControlPlane) -> list[Route]:
    return [*routes(control_plane, time.time), Route(OPENAPI_PATH, resources.OpenApi(), {"GET": PUBLIC})]


@pytest.fixture
def document(app: App) -> dict[str, Any]:
    result = testing.TestClient(app).simulate_get(OPENAPI_PATH)
    assert result.status_code == 200
    return dict(result.json)


def _served(table: list[Route]) -> set[tuple[str, str]]:
    """Every (template, method) with a responder the resource defines itself (falcon's defaults excluded)."""
    return {
        (route.template, method.lower())
        for route in table
        for method in falcon.routing.map_http_methods(route.resource)
    }


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def _router_templates(app: App) -> set[str]:
    # falcon has no public listing of its routes; walking the compiled router's tree is the only way to see
    # a route added with app.add_route outside the route table.
    found: set[str] = set()
    nodes = list(app._router._roots)
    while nodes:
        node = nodes.pop()
        if node.resource is not None and node.uri_template is not None:
            found.add(node.uri_template)
        nodes.extend(node.children)
    return found


def test_the_route_table_is_what_the_app_serves(app: App, table: list[Route]) -> None:
    assert _router_templates(app) == {route.template for route in table}


def test_every_served_route_and_method_is_documented_and_nothing_else(
    document: dict[str, Any], table: list[Route]
) -> None:
    served = _served(table)
    documented = _documented(document)
    assert served - documented == set(), "served but not in /api/openapi.json"
    assert documented - served == set(), "documented but not served"
    assert len(served) >= 14  # guards the walk itself: the routes are all there


def test_the_hand_written_operations_match_the_served_routes(table: list[Route]) -> None:
    assert set(OPERATIONS) == _served(table)


def test_the_document_is_openapi_3_with_security_schemes(document: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"]
    assert document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert schemes["mutualTLS"]["type"] == "mutualTLS"


def test_public_routes_need_no_security_and_every_other_route_needs_a_key(
    document: dict[str, Any], table: list[Route]
) -> None:
    roles = {route.template: route.roles for route in table}
    schemes = set(document["components"]["securitySchemes"])
    public = set()
    for path, method, operation in _operations(document):
        role = roles[path][method.upper()]
        assert operation["x-required-role"] == role
        if operation["security"] == []:
            public.add(path)
            assert role == PUBLIC, f"{method.upper()} {path} is documented as public"
        else:
            assert role != PUBLIC
            assert all(set(requirement) <= schemes for requirement in operation["security"])
            assert {"401", "403"} <= set(operation["responses"])
            # Only routes a daemon may call take a client certificate (the proxy checks it); operators use keys.
            assert ({"mutualTLS": []} in operation["security"]) == (role in (PUSH, READ_OR_PUSH))
    assert public == EXPECTED_PUBLIC


def test_each_operation_documents_the_role_the_route_table_declares(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert paths["/api/status/updates"]["post"]["x-required-role"] == PUSH
    assert paths["/api/status/{instance_id}/status"]["get"]["x-required-role"] == READ_OR_PUSH
    assert paths["/api/instances"]["get"]["x-required-role"] == READ
    assert paths["/api/instances"]["post"]["x-required-role"] == ADMIN
    assert paths["/api/instances/{instance_id}"]["delete"]["x-required-role"] == ADMIN
    assert paths["/api/instances/{instance_id}/restart-policy"]["put"]["x-required-role"] == ADMIN
    for action in ("start", "stop", "restart"):
        assert paths[f"/api/instances/{{instance_id}}/{action}"]["post"]["x-required-role"] == OPERATE
    assert paths["/api/audit"]["get"]["x-required-role"] == ADMIN


def test_a_served_method_without_a_declared_role_is_refused_at_start(control_plane: ControlPlane) -> None:
    with pytest.raises(ValueError, match="declares no role"):
        build_openapi([Route("/api/instances", resources.Instances(control_plane), {"GET": READ})])


def test_every_operation_has_a_summary_and_responses(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        assert operation.get("summary"), f"{method.upper()} {path}"
        assert operation.get("responses"), f"{method.upper()} {path}"
        assert all(re.fullmatch(r"[1-5]\d\d", code) for code in operation["responses"])


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), f"{method.upper()} {path}"
        assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")


def test_every_schema_reference_resolves(document: dict[str, Any]) -> None:
    schemas = set(document["components"]["schemas"])
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document["paths"])
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas
