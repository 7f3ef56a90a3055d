"""A real nginx for the mTLS tests, running the shipped ``config/nginx/draas.conf``.

``running_nginx`` renders that file with only three things replaced (the listen address, the upstream address
and the certificate directory), wraps it in a minimal main configuration of its own (prefix, logs and temporary
files in the test's directory), starts ``nginx -p <dir> -c <conf> -g 'daemon off; pid ...;'`` as a child in its
own session, waits until it accepts connections on a free 127.0.0.1 port, and stops it by its PID afterwards
(SIGTERM, then SIGKILL of its process group). The access log records, per request, whether nginx proxied it
(``$upstream_addr``), which is how the tests prove that a refused request never reached the control plane.

nginx itself comes from scripts/ensure-nginx.sh. Without it the tests are skipped with the reason
(``DRAAS_NGINX_UNAVAILABLE``), and fail instead with ``CI=true``.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psutil
import pytest

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config" / "nginx" / "draas.conf"
# What the tests change in the shipped file, and nothing else: each must occur exactly once.
LISTEN, UPSTREAM, TLS_DIR = "listen 443 ssl;", "server 127.0.0.1:8088;", "/etc/nginx/draas/"

_MAIN_CONF = """\
worker_processes 1;
{user}
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format draas_test '$status $request_method $request_uri upstream=$upstream_addr verify=$ssl_client_verify';
    access_log {prefix}/access.log draas_test;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    include {prefix}/draas.conf;
}}
"""


def skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs nginx: {reason}")
    pytest.skip(reason)


def nginx_binary() -> str:
    """The nginx to run, or a skip (a failure under CI=true) saying why there is none."""
    unavailable = os.environ.get("DRAAS_NGINX_UNAVAILABLE")
    if unavailable:
        skip_or_fail(f"no nginx: {unavailable}")
    found = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if found is None:
        skip_or_fail("no nginx on the PATH; run scripts/ensure-nginx.sh")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render_config(*, listen_port: int, upstream_port: int, tls_dir: Path) -> str:
    """The shipped configuration, pointed at this test's port, control plane and certificates."""
    text = SHIPPED_CONFIG.read_text()
    for placeholder, count in ((LISTEN, 1), (UPSTREAM, 1)):
        assert text.count(placeholder) == count, f"{SHIPPED_CONFIG} no longer has exactly one {placeholder!r}"
    assert TLS_DIR in text, f"{SHIPPED_CONFIG} no longer keeps its certificates in {TLS_DIR}"
    return (
        text.replace(LISTEN, f"listen 127.0.0.1:{listen_port} ssl;")
        .replace(UPSTREAM, f"server 127.0.0.1:{upstream_port};")
        .replace(TLS_DIR, f"{tls_dir}/")
    )


def _user_line() -> str:
    # A root master hands its workers to "nobody", who could not use this test's private directory.
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


@dataclass
class RunningNginx:
    process: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""

    def access_log(self, count: int) -> list[str]:
        """The access log once it holds ``count`` lines (nginx writes a line just after it answers)."""

        def lines() -> list[str]:
            path = self.prefix / "access.log"
            found = path.read_text().splitlines() if path.exists() else []
            assert len(found) <= count, f"more requests than the {count} expected: {found}"
            return found if len(found) == count else []

        return wait_until(lines, 5.0, 0.01, f"nginx logged {count} request(s)")

    def proxied(self, count: int) -> list[str]:
        """Of the ``count`` requests logged, those nginx passed to the upstream (the control plane)."""
        return [line for line in self.access_log(count) if "upstream=-" not in line]


@contextlib.contextmanager
def running_nginx(prefix: Path, *, upstream_port: int, tls_dir: Path) -> Iterator[RunningNginx]:
    binary = nginx_binary()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    (prefix / "draas.conf").write_text(render_config(listen_port=port, upstream_port=upstream_port, tls_dir=tls_dir))
    conf = prefix / "nginx.conf"
    conf.write_text(_MAIN_CONF.format(prefix=prefix, user=_user_line()))
    command = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    check = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f"nginx -t refused the configuration:\n{check.stderr}"
    process = subprocess.Popen(
        [*command, "-g", f"daemon off; pid {prefix / 'nginx.pid'};"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers share its group, so one killpg reaches them all
    )
    running = RunningNginx(process, port, prefix)
    try:
        wait_until(
            lambda: process.poll() is not None or _accepts(port),
            10.0,
            0.02,
            f"nginx accepts connections on 127.0.0.1:{port}",
        )
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{running.error_log}")
        yield running
    finally:
        _stop(process)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (nginx's fast shutdown) to the master by PID; SIGKILL to its process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # Still unreaped, so its PID (and process group id) cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    # A master that died on its own leaves its workers listening: they are the ones still in its group.
    for leftover in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(leftover.pid) == process.pid:
                leftover.kill()
