"""The OpenAPI document must describe exactly the routes and methods the app serves."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.constants
import falcon.routing
import pytest
from falcon import testing

from draas_actors.api.app import create_app
from draas_actors.api.routes import ROUTES, Operation, Wiring
from draas_actors.security import ADMIN, OPERATE, PUBLIC, PUSH, READ, READ_OR_PUSH, SecuritySettings
from draas_actors.system import ControlPlane
from tests.helpers import unstarted_control_plane

App = falcon.App[falcon.Request, falcon.Response]
HTTP_METHODS = {m.lower() for m in falcon.constants.COMBINED_METHODS}
OPENAPI_PATH = "/api/openapi.json"
# /metrics is public by default ([metrics] requireKey makes it need a read key: tests/unit/test_metrics.py).
# The dashboard's pages and files are public, and so is signing in (POST /ui/session).
EXPECTED_PUBLIC = {
    "/healthz", "/readyz", "/metrics", OPENAPI_PATH, "/ui", "/ui/instance", "/ui/signin", "/ui/static/{name}",
    "/ui/session",
}


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    # Never started: building the app and serving the document need no actors.
    with unstarted_control_plane(tmp_path) as cp:
        yield cp


@pytest.fixture
def app(control_plane: ControlPlane) -> App:
    return create_app(control_plane, daemon_keys=("d" * 20,), operator_keys=("o" * 20,))


@pytest.fixture
def document(app: App) -> dict[str, Any]:
    result = testing.TestClient(app).simulate_get(OPENAPI_PATH)
    assert result.status_code == 200
    return dict(result.json)


def _served(control_plane: ControlPlane) -> set[tuple[str, str]]:
    """Every (path, method) with a responder that a table entry's resource defines itself (falcon's defaults
    excluded), each path's resource built once."""
    wiring = Wiring(control_plane, time.time, SecuritySettings(), {})
    built = {operation.path: operation.resource(wiring) for operation in ROUTES}
    return {
        (path, method.lower())
        for path, resource in built.items()
        for method in falcon.routing.map_http_methods(resource)
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


def test_the_route_table_is_what_the_app_serves(app: App) -> None:
    assert _router_templates(app) == {operation.path for operation in ROUTES}


def test_every_responder_of_the_resources_has_exactly_one_table_entry(control_plane: ControlPlane) -> None:
    entries = [(operation.path, operation.method.lower()) for operation in ROUTES]
    assert len(entries) == len(set(entries)), "an operation is listed twice"
    assert set(entries) == _served(control_plane)
    assert len(entries) >= 15  # guards the walk itself: the routes are all there


def test_the_document_lists_every_table_entry_and_nothing_else(document: dict[str, Any]) -> None:
    assert _documented(document) == {(operation.path, operation.method.lower()) for operation in ROUTES}


def test_a_responder_without_a_table_entry_is_refused_at_start(control_plane: ControlPlane) -> None:
    # GET /api/instances only: the resource also serves POST, which would go out without a role or a document line.
    table = tuple(o for o in ROUTES if (o.method, o.path) != ("POST", "/api/instances"))
    with pytest.raises(ValueError, match="/api/instances: the resource serves"):
        create_app(control_plane, table=table)


def test_a_table_entry_without_a_responder_is_refused_at_start(control_plane: ControlPlane) -> None:
    healthz = next(o for o in ROUTES if o.path == "/healthz")
    extra = Operation("POST", "/healthz", healthz.resource, PUBLIC, "nothing serves it", {})
    with pytest.raises(ValueError, match="/healthz: the resource serves"):
        create_app(control_plane, table=(*ROUTES, extra))


def test_the_document_is_built_from_the_table_without_importing_the_app() -> None:
    # A fresh interpreter: this one has imported the app already. The app imports openapi, never the other way.
    code = "import sys, draas_actors.api.openapi; print('draas_actors.api.app' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


def test_the_document_is_openapi_3_with_security_schemes(document: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"]
    assert document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert schemes["mutualTLS"]["type"] == "mutualTLS"


def test_public_routes_need_no_security_and_every_other_route_needs_a_key(document: dict[str, Any]) -> None:
    roles = {(operation.path, operation.method): operation.role for operation in ROUTES}
    schemes = set(document["components"]["securitySchemes"])
    public = set()
    for path, method, operation in _operations(document):
        role = roles[(path, method.upper())]
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


def test_the_document_describes_what_a_webhook_receives(document: dict[str, Any]) -> None:
    post = document["webhooks"]["instanceStatusChanged"]["post"]
    assert {p["name"] for p in post["parameters"]} >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert "application/cloudevents+json" in post["requestBody"]["content"]
