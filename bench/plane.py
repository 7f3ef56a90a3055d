"""A control plane behind waitress on 127.0.0.1 for the benchmarks, with an in-process StatusChanged subscriber.

The benchmarks cannot use ``tests.helpers`` (it needs pytest), so their one way to serve a control plane is here.
"""
from __future__ import annotations

import contextlib
import pathlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import falcon
import requests

from draas_actors.api.app import create_app
from draas_actors.api.server import HttpServer, ServerLimits
from draas_actors.messages import StatusChanged
from draas_actors.security import LimitSettings, SecuritySettings
from draas_actors.streams import StreamSettings
from draas_actors.system import ControlPlane, SystemSettings

HOST = "127.0.0.1"
READY_S = 5.0  # how long the HTTP server has to answer /healthz

R = TypeVar("R", bound=Callable[[StatusChanged], None])


@dataclass(frozen=True)
class ServedPlane:
    cp: ControlPlane
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class DaemonPlane(Generic[R]):
    """A served control plane that knows one daemon key, and the subscriber that sees its StatusChanged."""

    cp: ControlPlane
    base_url: str
    daemon_key: str
    recorder: R


@contextlib.contextmanager
def served_control_plane(
    data_dir: pathlib.Path,
    make_app: Callable[[ControlPlane], falcon.App[falcon.Request, falcon.Response]],
    subscriber: Callable[[StatusChanged], None],
    *,
    queue_size: int | None = None,
    threads: int = 4,
    limits: ServerLimits = ServerLimits(),
    stream: StreamSettings = StreamSettings(),
) -> Iterator[ServedPlane]:
    """Start a control plane, subscribe ``subscriber``, serve ``make_app(cp)`` until it answers; stop both after."""
    cp = ControlPlane(SystemSettings(data_dir=data_dir, sweep_interval=60.0, stream=stream))
    server: HttpServer | None = None
    try:
        cp.start()
        if queue_size is None:
            cp.subscribe(subscriber)
        else:
            cp.subscribe(subscriber, queue_size=queue_size)
        server = HttpServer(
            make_app(cp), host=HOST, port=0, threads=threads, limits=limits, streams=cp.streams
        ).start()
        plane = ServedPlane(cp, server.port)
        deadline = time.monotonic() + READY_S
        while not answers(plane.base_url + "/healthz"):
            if time.monotonic() > deadline:
                raise TimeoutError("the control plane's HTTP server does not answer /healthz")
            time.sleep(0.02)
        yield plane
    finally:
        if server is not None:
            server.stop()
        cp.stop(timeout=5.0)


@contextlib.contextmanager
def daemon_control_plane(
    data_dir: pathlib.Path, recorder: R, limits: LimitSettings | None = None
) -> Iterator[DaemonPlane[R]]:
    """A served control plane with one fresh daemon key (and an operator key nobody holds), at ``limits``."""
    key = secrets.token_hex(16)
    security = SecuritySettings(limits=limits or LimitSettings())

    def make_app(cp: ControlPlane) -> falcon.App[falcon.Request, falcon.Response]:
        return create_app(cp, security=security, daemon_keys=(key,), operator_keys=(secrets.token_hex(16),))

    with served_control_plane(data_dir, make_app, recorder) as plane:
        yield DaemonPlane(plane.cp, plane.base_url, key, recorder)


def answers(url: str) -> bool:
    """The URL answers 200; False while nobody listens."""
    try:
        return requests.get(url, timeout=1.0).status_code == 200
    except requests.ConnectionError:
        return False
