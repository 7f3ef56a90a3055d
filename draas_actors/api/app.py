"""create_app: wires routes, roles, auth and error handling. Nothing else lives here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import falcon

from ..errors import DraasError
from ..system import ControlPlane
from . import resources as r
from .auth import DAEMON, OPERATOR, PUBLIC, ApiKeyAuth
from .errors import handle_domain_error, serialize_http_error
from .openapi import build_openapi


@dataclass(frozen=True)
class Route:
    template: str
    resource: Any
    role: str  # the one place a route's required role is declared


def routes(cp: ControlPlane, clock: Callable[[], float]) -> list[Route]:
    return [
        Route("/api/status/updates", r.StatusUpdates(cp, clock), DAEMON),
        Route("/api/status/{instance_id}/status", r.InstanceStatus(cp), OPERATOR),
        Route("/api/status/recent-changes", r.RecentChanges(cp, clock), OPERATOR),
        Route("/api/status/changes", r.Changes(cp), OPERATOR),
        Route("/api/instances", r.Instances(cp), OPERATOR),
        Route("/api/instances/{instance_id}", r.Instance(cp), OPERATOR),
        Route("/api/instances/{instance_id}/restart-policy", r.InstanceRestartPolicy(cp), OPERATOR),
        *(
            Route(f"/api/instances/{{instance_id}}/{action}", r.InstanceAction(cp, action), OPERATOR)
            for action in ("start", "stop", "restart")
        ),
        Route("/healthz", r.Healthz(), PUBLIC),
        Route("/readyz", r.Readyz(cp), PUBLIC),
    ]


def create_app(
    control_plane: ControlPlane,
    *,
    daemon_keys: tuple[str, ...],
    operator_keys: tuple[str, ...],
    clock: Callable[[], float] = time.time,
) -> falcon.App:
    openapi = r.OpenApi()
    table = [*routes(control_plane, clock), Route("/api/openapi.json", openapi, PUBLIC)]
    openapi.document = build_openapi(table)
    roles = {route.template: route.role for route in table}
    app = falcon.App(
        middleware=[ApiKeyAuth(roles, {DAEMON: daemon_keys, OPERATOR: operator_keys})],
    )
    app.req_options.strip_url_path_trailing_slash = True
    for route in table:
        app.add_route(route.template, route.resource)
    app.add_error_handler(DraasError, handle_domain_error)
    app.set_error_serializer(serialize_http_error)
    return app
