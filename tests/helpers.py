"""Shared test helpers: polling to a deadline, a control plane on real HTTP, and process clean-up by PID."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import requests
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from draas_actors.actors.store import Retention
from draas_actors.actors.supervisor import SupervisionSettings
from draas_actors.api.app import create_app
from draas_actors.api.server import HttpServer, ServerLimits
from draas_actors.platforms.kubernetes import KubernetesSettings
from draas_actors.security import SecuritySettings
from draas_actors.streams import StreamSettings
from draas_actors.system import ControlPlane, SystemSettings
from draas_actors.webhooks import WebhookSettings

T = TypeVar("T")

HTTP_TIMEOUT = 5.0


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.01, message: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; ``pytest.fail`` at the deadline.

    A predicate may answer None for "not yet": what it returns at last is not None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"not true within {timeout}s: {message or predicate}")
        time.sleep(interval)


def holds_for(predicate: Callable[[], bool], duration: float, interval: float = 0.05, message: str = "") -> None:
    """Fail as soon as ``predicate`` is false during ``duration`` seconds (for "nothing happens" checks)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not predicate():
            pytest.fail(f"stopped holding within {duration}s: {message or predicate}")
        time.sleep(interval)


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an exited child nobody has reaped yet is still listed by the kernel)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class ProcessJanitor:
    """Remembers processes a test started or caused, and SIGKILLs the survivors by PID (never by name)."""

    tracked: dict[int, float] = field(default_factory=dict)  # pid -> create time, against PID reuse

    def track(self, pid: int) -> int:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.tracked.setdefault(pid, psutil.Process(pid).create_time())
        return pid

    def kill_all(self) -> None:
        for pid, create_time in self.tracked.items():
            kill_if_same(pid, create_time)
        self.tracked.clear()


def kill_if_same(pid: int, create_time: float) -> None:
    """SIGKILL ``pid`` (its whole group if it leads one) when it is still the process we knew.

    It is not reaped here: its ``Popen`` does that, and a ``waitpid`` behind the ``Popen``'s back would leave
    it to reap whatever process reuses the PID later.
    """
    try:
        if psutil.Process(pid).create_time() != create_time:
            return
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
        pass


@dataclass
class RunningControlPlane:
    cp: ControlPlane
    server: HttpServer
    base_url: str
    daemon_key: str
    operator_key: str
    janitor: ProcessJanitor

    @property
    def operator_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.operator_key}

    @property
    def daemon_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.daemon_key}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.base_url + path, headers=self.operator_headers, timeout=HTTP_TIMEOUT, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.base_url + path, headers=self.operator_headers, timeout=HTTP_TIMEOUT, **kwargs)

    def push(self, body: Any) -> requests.Response:
        return requests.post(
            self.base_url + "/api/status/updates", json=body, headers=self.daemon_headers, timeout=HTTP_TIMEOUT
        )

    def instance(self, instance_id: str) -> dict[str, Any]:
        response = self.get(f"/api/instances/{instance_id}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/instances, expecting 201; the PID it started is tracked for clean-up."""
        response = self.post("/api/instances", json=body)
        assert response.status_code == 201, response.text
        view: dict[str, Any] = response.json()
        if view["runtime"] is not None:
            self.janitor.track(view["runtime"]["pid"])
        return view

    def changes(self, instance_id: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        response = self.get("/api/status/changes", params={"after": after, "limit": 1000})
        assert response.status_code == 200, response.text
        return [c for c in response.json()["changes"] if instance_id is None or c["instanceId"] == instance_id]

    def wait_for_changes(
        self, count: int, instance_id: str | None = None, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Poll the change feed until it holds exactly ``count`` changes (of one instance, if given)."""

        def check() -> list[dict[str, Any]]:
            changes = self.changes(instance_id)
            return changes if len(changes) == count else []

        return wait_until(check, timeout, 0.02, f"the change feed holds {count} changes")

    def transitions(self, instance_id: str) -> list[tuple[str, str]]:
        return [(c["oldStatus"], c["newStatus"]) for c in self.changes(instance_id)]

    def wait_for(
        self, instance_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0, message: str = ""
    ) -> dict[str, Any]:
        """Poll GET /api/instances/{id} until ``predicate(view)``; returns that view."""

        def check() -> dict[str, Any] | None:
            view = self.instance(instance_id)
            if view["runtime"] is not None:
                self.janitor.track(view["runtime"]["pid"])
            return view if predicate(view) else None

        view = wait_until(check, timeout, 0.02, message or f"instance {instance_id}")
        assert view is not None
        return view


@contextlib.contextmanager
def running_control_plane(
    data_dir: Path,
    *,
    sweep_interval: float = 60.0,
    supervision: SupervisionSettings | None = None,
    stop_processes: bool = True,
    janitor: ProcessJanitor | None = None,
    kubernetes: KubernetesSettings | None = None,
    security: SecuritySettings | None = None,
    server_limits: ServerLimits | None = None,
    webhooks: WebhookSettings | None = None,
    retention: Retention | None = None,
    stream: StreamSettings | None = None,
    tracer: trace.Tracer | None = None,
) -> Iterator[RunningControlPlane]:
    """A started ControlPlane behind waitress on 127.0.0.1 and an ephemeral port.

    ``daemon_key``/``operator_key`` are the quick-start identities (``local-daemon``, ``local-admin``), on top of
    any identities in ``security``.

    The sweep interval defaults to a minute so that tests prove exits are seen through pidfds, not the sweep.
    On the way out everything is stopped; with ``stop_processes`` the instances' processes are stopped too,
    and any process that survives (or that the control plane lost track of) is SIGKILLed by PID.
    """
    janitor = janitor if janitor is not None else ProcessJanitor()
    cp = ControlPlane(
        SystemSettings(
            data_dir=data_dir, sweep_interval=sweep_interval, supervision=supervision or SupervisionSettings(),
            kubernetes=kubernetes or KubernetesSettings(), webhooks=webhooks or WebhookSettings(),
            retention=retention or Retention(), stream=stream or StreamSettings(),
        )
    )
    server: HttpServer | None = None
    try:
        cp.start()
        daemon_key, operator_key = secrets.token_hex(16), secrets.token_hex(16)
        app = create_app(
            cp, security=security, daemon_keys=(daemon_key,), operator_keys=(operator_key,), tracer=tracer
        )
        server = HttpServer(
            app, host="127.0.0.1", port=0, threads=4, limits=server_limits or ServerLimits(), streams=cp.streams
        ).start()
        base_url = f"http://127.0.0.1:{server.port}"
        wait_until(lambda: answers(base_url + "/healthz"), 5.0, 0.02, "the HTTP server answers /healthz")
        yield RunningControlPlane(cp, server, base_url, daemon_key, operator_key, janitor)
    finally:
        if server is not None:
            server.stop()
        supervisor = cp.refs.supervisor
        if supervisor is not None and not supervisor.is_alive():
            janitor.kill_all()  # the test stopped the control plane itself
        elif stop_processes:
            with contextlib.suppress(Exception):
                for record in cp.list_instances():
                    if record.runtime is not None:
                        janitor.track(record.runtime.pid)
            try:
                cp.stop(stop_processes=True, timeout=5.0)
            finally:
                janitor.kill_all()
        else:
            cp.stop(timeout=5.0)


@contextlib.contextmanager
def unstarted_control_plane(data_dir: Path) -> Iterator[ControlPlane]:
    """A control plane that is never started (its store in memory): enough to build the app and route to it."""
    cp = ControlPlane(SystemSettings(data_dir=data_dir, store_path=":memory:"))
    try:
        yield cp
    finally:
        cp.stop(timeout=5)


def answers(url: str) -> bool:
    """The URL answers 200 (a server that is up); False while nobody listens."""
    try:
        return requests.get(url, timeout=1.0).status_code == 200
    except requests.ConnectionError:
        return False


@dataclass
class Tracing:
    """An SDK tracer provider of its own (never the global one) whose finished spans an in-memory exporter keeps."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def tracer(self, name: str) -> trace.Tracer:
        return self.provider.get_tracer(name)

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]


@contextlib.contextmanager
def in_memory_tracing() -> Iterator[Tracing]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield Tracing(provider, exporter)
    finally:
        provider.shutdown()


def traceparent_of_span(span: ReadableSpan) -> str:
    """The W3C traceparent that names ``span`` as the parent, spelled out here independently of the code's."""
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
