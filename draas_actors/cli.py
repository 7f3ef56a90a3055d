"""run.py's body: parse args, load settings, start the actor system and HTTP, wait for a signal, stop."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from .api.app import create_app
from .api.server import HttpServer
from .errors import ConfigError
from .heap import settle_after_start
from .messages import StatusChanged
from .model import Status
from .security import hash_key, new_key
from .settings import MIN_KEY_LENGTH, ensure_keys, load_settings
from .storefile import StoreError
from .system import ControlPlane

log = logging.getLogger("draas")
DEFAULT_CONFIG = Path("config/draas.toml")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run.py", description="draas-actors control plane")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    hash_parser = commands.add_parser(
        "hash-key",
        help="print a new random API key and its hash for keyHashes (nothing is logged or stored)",
        description="Print a new random API key (shown this once) and the sha256: hash to put in keyHashes.",
    )
    hash_parser.add_argument(
        "--stdin", action="store_true", help="hash a key read from standard input instead (e.g. a generated key file)"
    )
    parser.add_argument("--config", type=Path, default=None, help=f"TOML settings (default {DEFAULT_CONFIG})")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on; 0 picks a free one")
    parser.add_argument("--data-dir", default=None, help="store, logs and generated keys (default ./var)")
    parser.add_argument(
        "--fresh-store", action="store_true",
        help="start with an empty store even where a damaged or missing one is found (what was there is moved "
        "aside, never deleted)",
    )
    return parser.parse_args(argv)


class ChangeLog:
    """run.py's subscriber: every change in the log, without a line per change at INFO under a flood of pushes.

    A move to Failed is always logged at INFO (someone may have to act on it); up to ``per_second`` other changes
    in each second are too, and the rest at DEBUG, with one INFO line per ``summary_every`` seconds that says how
    many went there. (An INFO line per change cost about a tenth of a push's CPU at 1,000 updates/s, measured in
    bench/push_throughput.py, and buried the Failed moves.) The subscriber's delivery thread is its only caller;
    the count line is written with the first change after its period, and by ``close``.
    """

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        per_second: int = 20,
        summary_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.per_second = per_second
        self.summary_every = summary_every
        self.clock = clock
        self._second = clock()  # start of the current one-second window
        self._in_second = 0  # changes logged at INFO in it (Failed moves not counted)
        self._period = self._second  # start of the current summary period
        self._quiet = 0  # changes logged at DEBUG in it

    def __call__(self, event: StatusChanged) -> None:
        now = self.clock()
        if now - self._period >= self.summary_every:
            self._summarise(now)
        if now - self._second >= 1.0:
            self._second, self._in_second = now, 0
        if event.new_status is Status.FAILED:
            level = logging.INFO
        elif self._in_second < self.per_second:
            self._in_second += 1
            level = logging.INFO
        else:
            self._quiet += 1
            level = logging.DEBUG
        if self.logger.isEnabledFor(level):
            self.logger.log(
                level, "instance %s: %s -> %s (source %s)",
                event.instance_id, event.old_status.value, event.new_status.value, event.source,
            )

    def close(self) -> None:
        """Say how many changes went to DEBUG since the last count line, if any did."""
        self._summarise(self.clock())

    def _summarise(self, now: float) -> None:
        if self._quiet:
            self.logger.info(
                "%d more changes in the last %.0f s were logged at DEBUG only (at most %d a second at INFO, "
                "besides moves to Failed)", self._quiet, now - self._period, self.per_second,
            )
        self._period, self._quiet = now, 0


def hash_key_command(*, read_stdin: bool = False) -> int:
    """``run.py hash-key``: the key goes to stdout only, this once; give it to the daemon or operator, keep the hash."""
    if read_stdin:
        key = sys.stdin.readline().strip()
        if len(key) < MIN_KEY_LENGTH:
            print(f"hash-key: a key must be at least {MIN_KEY_LENGTH} characters", file=sys.stderr)
            return 2
        print(hash_key(key))
        return 0
    key = new_key()
    print(f"key:  {key}")
    print(f"hash: {hash_key(key)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "hash-key":
        return hash_key_command(read_stdin=args.stdin)
    config = args.config if args.config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    try:
        settings = load_settings(config, overrides={"host": args.host, "port": args.port, "dataDir": args.data_dir})
    except ConfigError as error:
        print(f"configuration error: {error.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal: exiting at once")
            os._exit(1)
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    control_plane = ControlPlane(settings.system)
    change_log = ChangeLog()
    try:
        # The store is checked first: a damaged one refuses the start before anything runs or is written.
        control_plane.start(settings.instances, subscribers=[change_log], fresh_store=args.fresh_store)
    except StoreError as error:
        print(f"store error: {error.message}", file=sys.stderr)
        control_plane.stop(timeout=settings.shutdown_timeout)
        return 2
    except Exception:
        log.exception("start-up failed")
        control_plane.stop(timeout=settings.shutdown_timeout)
        return 1
    # The actors of every stored instance live as long as the control plane: out of the collector's full walks.
    log.debug("%d start-up objects frozen for the garbage collector", settle_after_start())
    settings, written = ensure_keys(settings)
    for path in written:
        log.info("generated an API key in %s (mode 0600); it is used until you configure one", path)
    app = create_app(
        control_plane,
        security=settings.security,
        daemon_keys=settings.daemon_keys,
        operator_keys=settings.operator_keys,
    )
    server = HttpServer(
        app, host=settings.host, port=settings.port, threads=settings.threads, limits=settings.server_limits,
        streams=control_plane.streams,
    ).start()
    log.info("listening on http://%s:%d (data in %s)", server.host, server.port, settings.system.data_dir)

    stop.wait()
    server.stop()
    control_plane.stop(stop_processes=settings.stop_processes_on_exit, timeout=settings.shutdown_timeout)
    change_log.close()
    log.info("stopped")
    return 0
