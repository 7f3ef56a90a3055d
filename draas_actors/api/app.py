"""create_app: wires routes, roles, middleware and error handling. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import falcon
import falcon.routing
from opentelemetry import trace

from ..errors import DraasError
from ..security import SecuritySettings, quick_start
from ..system import ControlPlane
from .audit import AuditRejections
from .auth import Authenticate, KeyRing
from .errors import handle_domain_error, serialize_http_error
from .limits import BodyLimits
from .metering import MeterRequests
from .network import ClientAddress, PushAllowlist
from .openapi import build_openapi
from .paths import CaseInsensitiveRoutes
from .ratelimit import RateLimit, RateLimiter
from .routes import ROUTES, Operation, ResourceFactory, Wiring, roles, with_metrics_access
from .session import Sessions


def build_resources(table: tuple[Operation, ...], wiring: Wiring) -> dict[str, object]:
    """path -> the resource serving it. Refuses, at start, a table whose operations on one path name different
    resources, and a resource whose responders are not exactly its path's operations in the table (a responder
    without an entry would be served without a role or a line in the document)."""
    built: dict[str, object] = {}
    factories: dict[str, ResourceFactory] = {}
    for operation in table:
        factory = factories.setdefault(operation.path, operation.resource)
        if factory is not operation.resource:
            raise ValueError(f"{operation.method} {operation.path} names another resource than the path's others")
    for path, factory in factories.items():
        resource = factory(wiring)
        served = set(falcon.routing.map_http_methods(resource))
        listed = {operation.method for operation in table if operation.path == path}
        if served != listed:
            raise ValueError(f"{path}: the resource serves {sorted(served)} but the route table lists {sorted(listed)}")
        built[path] = resource
    return built


def create_app(
    control_plane: ControlPlane,
    *,
    security: SecuritySettings | None = None,
    daemon_keys: tuple[str, ...] = (),
    operator_keys: tuple[str, ...] = (),
    clock: Callable[[], float] = time.time,
    table: tuple[Operation, ...] = ROUTES,
    tracer: trace.Tracer | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The WSGI app. ``daemon_keys``/``operator_keys`` are plain quick-start keys: ``local-daemon`` (any
    platform, any instance) and ``local-admin``, on top of the identities in ``security.auth``. ``tracer``: the
    pushes' spans go to it (tests give an SDK's); by default the global provider's."""
    security = security or SecuritySettings()
    table = with_metrics_access(table, security)
    credentials = (*security.auth.credentials, *quick_start(daemon_keys, operator_keys))
    sessions = Sessions(security.sessions, clock)
    wiring = Wiring(control_plane, clock, security, build_openapi(table), tracer, sessions, KeyRing(credentials))
    resources = build_resources(table, wiring)
    templates = list(resources)
    network = security.network
    # The order of the checks: client address, body limits, who (401), role (403), allowlist (403), rate (429).
    # Typed Any: falcon's middleware protocols are generic in request and response types it cannot infer here.
    middleware: list[Any] = [
        MeterRequests(control_plane.metrics),  # first: its clock and count cover every other middleware's refusal
        CaseInsensitiveRoutes(templates),  # before routing: /api/Status/updates
        AuditRejections(control_plane, templates, clock=clock),  # sees every refusal
        ClientAddress(network.trusted_proxies),
        BodyLimits(security.limits),
        Authenticate(roles(table), credentials, sessions),
        PushAllowlist(network.push_allowlist),
        RateLimit(RateLimiter(security.limits)),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # json.dumps writes NaN and Infinity by default, which no JSON parser takes: a non-finite number that got past
    # the input checks is a 500 to fix, never an answer that clients choke on.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=functools.partial(json.dumps, ensure_ascii=False, allow_nan=False)
    )
    for path, resource in resources.items():
        app.add_route(path, resource)
    app.add_error_handler(DraasError, handle_domain_error)
    app.set_error_serializer(serialize_http_error)
    return app
