"""The shipped nginx configuration agrees with the control plane's own limits (its behaviour is tested through a
real nginx in tests/integration/test_mtls_nginx.py)."""

from __future__ import annotations

import re
from pathlib import Path

from draas_actors.api.server import ServerLimits
from draas_actors.security import LimitSettings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "nginx" / "draas.conf"
UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def directives(name: str, block: str = "") -> list[str]:
    """The arguments of every ``name`` directive (within the first ``block {...}`` if given), comments dropped."""
    text = "\n".join(line.split("#", 1)[0] for line in CONFIG.read_text().splitlines())
    if block:
        found = re.search(rf"(?m)^\s*{re.escape(block)}\s*\{{([^}}]*)\}}", text)
        assert found is not None, f"no {block} block in {CONFIG}"
        text = found.group(1)
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{re.escape(name)}\s+([^;]*);", text)]


def test_nginx_refuses_exactly_the_bodies_the_control_plane_would() -> None:
    (size,) = directives("client_max_body_size")
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()  # type: ignore[union-attr]
    assert int(number) * UNITS[unit] == LimitSettings().max_body_bytes


def test_nginx_drops_idle_upstream_connections_before_waitress_does() -> None:
    # Otherwise a POST can be sent on a connection waitress is closing, and nginx answers 502 without a retry.
    (timeout,) = directives("keepalive_timeout", block="upstream draas_control_plane")
    assert timeout.endswith("s") and int(timeout[:-1]) < ServerLimits().channel_timeout


def test_nginx_overwrites_the_forwarded_headers_rather_than_appending_to_them() -> None:
    headers = dict(value.split(None, 1) for value in directives("proxy_set_header"))
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["X-Client-Verify"] == "$ssl_client_verify"
    assert headers["X-Client-Subject"] == "$draas_client_subject"
    assert directives("ssl_verify_client") == ["optional"]
    assert directives("ssl_protocols") == ["TLSv1.2 TLSv1.3"]
