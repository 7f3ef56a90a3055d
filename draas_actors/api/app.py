"""create_app: wires routes, roles, middleware and error handling. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import falcon

from ..errors import DraasError
from ..security import ADMIN, OPERATE, PUBLIC, PUSH, READ, READ_OR_PUSH, SecuritySettings, quick_start
from ..system import ControlPlane
from . import resources as r
from .audit import AuditRejections
from .auth import Authenticate
from .errors import handle_domain_error, serialize_http_error
from .limits import BodyLimits
from .network import ClientAddress, PushAllowlist
from .openapi import build_openapi
from .paths import CaseInsensitiveRoutes
from .ratelimit import RateLimit, RateLimiter


@dataclass(frozen=True)
class Route:
    template: str
    resource: Any
    roles: Mapping[str, str]  # HTTP method -> required role: the one place a route's roles are declared


def routes(cp: ControlPlane, clock: Callable[[], float], security: SecuritySettings | None = None) -> list[Route]:
    limits = (security or SecuritySettings()).limits
    return [
        Route("/api/status/updates", r.StatusUpdates(cp, clock, limits), {"POST": PUSH}),
        Route("/api/status/{instance_id}/status", r.InstanceStatus(cp), {"GET": READ_OR_PUSH}),
        Route("/api/status/recent-changes", r.RecentChanges(cp, clock), {"GET": READ}),
        Route("/api/status/changes", r.Changes(cp), {"GET": READ}),
        Route("/api/instances", r.Instances(cp), {"GET": READ, "POST": ADMIN}),
        Route("/api/instances/{instance_id}", r.Instance(cp), {"GET": READ, "DELETE": ADMIN}),
        Route("/api/instances/{instance_id}/restart-policy", r.InstanceRestartPolicy(cp), {"PUT": ADMIN}),
        *(
            Route(f"/api/instances/{{instance_id}}/{action}", r.InstanceAction(cp, action), {"POST": OPERATE})
            for action in ("start", "stop", "restart")
        ),
        Route("/api/audit", r.Audit(cp), {"GET": ADMIN}),
        Route("/healthz", r.Healthz(cp), {"GET": PUBLIC}),
        Route("/readyz", r.Readyz(cp), {"GET": PUBLIC}),
    ]


def create_app(
    control_plane: ControlPlane,
    *,
    security: SecuritySettings | None = None,
    daemon_keys: tuple[str, ...] = (),
    operator_keys: tuple[str, ...] = (),
    clock: Callable[[], float] = time.time,
) -> falcon.App:
    """The WSGI app. ``daemon_keys``/``operator_keys`` are plain quick-start keys: ``local-daemon`` (any
    platform, any instance) and ``local-admin``, on top of the identities in ``security.auth``."""
    security = security or SecuritySettings()
    openapi = r.OpenApi()
    table = [*routes(control_plane, clock, security), Route("/api/openapi.json", openapi, {"GET": PUBLIC})]
    openapi.document = build_openapi(table)
    roles = {route.template: route.roles for route in table}
    credentials = (*security.auth.credentials, *quick_start(daemon_keys, operator_keys))
    network = security.network
    app = falcon.App(
        # The order of the checks: client address, body limits, who (401), role (403), allowlist (403), rate (429).
        middleware=[
            CaseInsensitiveRoutes(route.template for route in table),  # before routing: /api/Status/updates
            AuditRejections(control_plane, [route.template for route in table], clock=clock),  # sees every refusal
            ClientAddress(network.trusted_proxies),
            BodyLimits(security.limits),
            Authenticate(roles, credentials),
            PushAllowlist(network.push_allowlist),
            RateLimit(RateLimiter(security.limits)),
        ],
    )
    app.req_options.strip_url_path_trailing_slash = True
    # json.dumps writes NaN and Infinity by default, which no JSON parser takes: a non-finite number that got past
    # the input checks is a 500 to fix, never an answer that clients choke on.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=functools.partial(json.dumps, ensure_ascii=False, allow_nan=False)
    )
    for route in table:
        app.add_route(route.template, route.resource)
    app.add_error_handler(DraasError, handle_domain_error)
    app.set_error_serializer(serialize_http_error)
    return app
