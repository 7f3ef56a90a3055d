"""Case-insensitive routes under /api/status: literal segments spelled as the route table does, ids kept."""

from __future__ import annotations

import pytest

from draas_actors.api.paths import CaseInsensitiveRoutes

ROUTES = CaseInsensitiveRoutes([
    "/api/status/updates", "/api/status/{instance_id}/status", "/api/status/recent-changes", "/api/status/changes",
    "/api/instances", "/api/instances/{instance_id}",
])


@pytest.mark.parametrize(
    ("path", "spelled"),
    [
        ("/api/Status/updates", "/api/status/updates"),
        ("/API/STATUS/RECENT-CHANGES", "/api/status/recent-changes"),
        ("/api/status/Changes", "/api/status/changes"),
        ("/Api/Status/Web-1/Status", "/api/status/Web-1/status"),
        ("/api/status/Updates/STATUS", "/api/status/Updates/status"),  # an instance named "Updates"
    ],
)
def test_a_status_route_in_any_case_is_spelled_as_the_route_table_does(path: str, spelled: str) -> None:
    assert ROUTES.spell(path) == spelled


@pytest.mark.parametrize("path", ["/api/status/nothing", "/api/status", "/api/status/a/b/c", "/api/status//updates"])
def test_a_path_no_status_route_has_is_left_to_falcon(path: str) -> None:
    assert ROUTES.spell(path) is None


def test_routes_outside_the_status_controller_keep_their_exact_spelling() -> None:
    assert ROUTES.templates == sorted(ROUTES.templates, key=lambda t: sum(s.startswith("{") for s in t))
    assert all(t[:2] == ("api", "status") for t in ROUTES.templates)
