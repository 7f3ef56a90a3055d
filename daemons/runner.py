"""A daemon's ``main``: settings from the environment, the loop in a worker thread, SIGTERM/SIGINT to stop it.

Exit status: 0 after a signal (and for ``--help``, which prints the usage and the environment variables without
reading them or connecting to anything), 2 for a configuration error (the message names the variable) or an
argument (the daemons take none but ``--help``), 1 when the loop failed or did not end within its bound after a
signal.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

from prometheus_client.registry import Collector

from draas_actors.errors import ConfigError

from .daemon_env import COMMON_VARIABLES, CommonSettings, Variable
from .metrics import MetricsServer
from .spool import SpoolLocked

__all__ = ["STOP_MARGIN", "Daemon", "run_daemon", "usage"]

log = logging.getLogger("draas.daemon")

# After a signal the loop gets the flush bound plus this much to end; an API request that hangs past it (a
# half-open connection before its read timeout) does not hold the process: what is undelivered is on disk.
STOP_MARGIN = 5.0

S = TypeVar("S", bound=CommonSettings)


class Daemon(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def stats(self) -> Any: ...

    @property
    def metrics(self) -> Collector: ...  # its counters, served on DRAAS_METRICS_PORT when it is set


def usage(program: str, summary: str, settings_class: type[CommonSettings], variables: Sequence[Variable]) -> str:
    """``--help``: what the daemon does, and every environment variable it reads with its default."""
    defaults = {
        field.name: field.default
        for field in dataclasses.fields(settings_class)
        if field.default is not dataclasses.MISSING
    }
    everything = [*COMMON_VARIABLES[:2], *variables, *COMMON_VARIABLES[2:]]
    width = max(len(variable.name) for variable in everything)
    lines = [f"usage: {program} [--help]", "", summary, "", "Configured through the environment only:"]
    for variable in everything:
        default = dataclasses.MISSING if variable.field is None else defaults.get(variable.field, dataclasses.MISSING)
        shown = "" if default is dataclasses.MISSING else f" (default: {_shown(default)})"
        lines.append(f"  {variable.name:<{width}}  {variable.help}{shown}")
    lines += [
        "",
        "Exit status: 0 after SIGTERM or SIGINT (what is not delivered stays spooled), 2 for a configuration error",
        "naming the variable, 1 if the daemon's loop failed.",
    ]
    return "\n".join(lines)


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if not isinstance(value, Path) else value.as_posix()


def run_daemon(
    program: str,
    load_settings: Callable[[Mapping[str, str]], S],
    make_daemon: Callable[[S], Daemon],
    environ: Mapping[str, str] = os.environ,
    *,
    argv: Sequence[str] = (),
    help_text: str = "",
) -> int:
    """Load the settings, make the daemon, run it until a signal; returns the exit status.

    ``argv`` (the arguments, without the program): ``-h``/``--help`` prints ``help_text`` and returns 0 before
    anything is read or connected to; any other argument is a usage error (2).
    """
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text)
        return 0
    if argv:
        print(f"{program}: unexpected argument {argv[0]!r}: configured through the environment only "
              f"(see {program} --help)", file=sys.stderr)
        return 2
    try:
        settings = load_settings(environ)
    except ConfigError as error:
        print(f"{program}: configuration error: {error.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        daemon = make_daemon(settings)
    except ConfigError as error:
        print(f"{program}: configuration error: {error.message}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error, SpoolLocked) as error:
        print(f"{program}: DRAAS_SPOOL_PATH={settings.spool_path}: {error}", file=sys.stderr)
        return 2

    metrics: MetricsServer | None = None
    if settings.metrics_port is not None:
        try:
            metrics = MetricsServer(daemon.metrics, settings.metrics_host, settings.metrics_port).start()
        except OSError as error:
            print(f"{program}: DRAAS_METRICS_PORT={settings.metrics_port}: cannot listen on "
                  f"{settings.metrics_host}: {error}", file=sys.stderr)
            return 2
    try:
        return _run_until_signal(program, settings, daemon)
    finally:
        if metrics is not None:  # the metrics end with the daemon: no thread or socket is left behind
            metrics.stop()


def _run_until_signal(program: str, settings: CommonSettings, daemon: Daemon) -> int:
    """The loop in a worker thread; SIGTERM/SIGINT stop it within the flush bound. Returns the exit status."""
    signalled = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signalled.is_set():
            # Nothing is lost by leaving now: what is not delivered is in the spool, on disk.
            log.warning("%s again: exiting at once", name)
            os._exit(1)
        signalled.set()
        log.info("%s: stopping (flushing pushes for up to %.1fs)", name, settings.shutdown_flush)
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failure: list[BaseException] = []

    def body() -> None:
        try:
            daemon.run()
        except BaseException as error:  # reported below; the process must still exit
            failure.append(error)
            log.critical("the daemon's loop failed", exc_info=True)

    # The loop runs in a thread so that the main thread is free to take signals at any time. A daemon thread, so
    # that a loop stuck past its bound does not keep the process alive.
    worker = threading.Thread(target=body, name=program, daemon=True)
    worker.start()
    while worker.is_alive() and not signalled.is_set():
        worker.join(0.5)
    worker.join(settings.shutdown_flush + STOP_MARGIN)
    if worker.is_alive():
        log.error("the daemon's loop did not end within %.1fs of the signal; exiting (undelivered updates stay in %s)",
                  settings.shutdown_flush + STOP_MARGIN, settings.spool_path)
        return 1
    log.info("stopped: %s", daemon.stats)
    return 1 if failure else 0
