"""waitress in a thread, with a clean stop: for run.py and for tests that need real HTTP."""

from __future__ import annotations

import logging
import threading
from typing import Any

import waitress
from waitress import wasyncore
from waitress.server import BaseWSGIServer, MultiSocketServer

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, app: Any, *, host: str, port: int, threads: int = 8) -> None:
        server = waitress.create_server(app, host=host, port=port, threads=threads, ident="draas")
        assert isinstance(server, (BaseWSGIServer, MultiSocketServer))
        self._server = server
        self._thread = threading.Thread(target=self._serve, name="draas-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    @property
    def host(self) -> str:
        return str(self._server.effective_host)  # type: ignore[union-attr]

    def start(self) -> "HttpServer":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server = self._server
        if isinstance(server, BaseWSGIServer):
            # Closing only the listener leaves an idle keep-alive connection holding waitress's loop open until
            # its channel_timeout (120 s): close every socket, from inside the loop's thread (its trigger).
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map, ignore_all=True))
            except OSError:
                # The loop, already awake for a response, ran our thunk between its append and this write,
                # and the thunk closed the trigger along with everything else: the stop is done.
                log.debug("http server trigger closed by the stop itself", exc_info=True)
        else:
            server.close()
        self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):
            # close() from another thread ends the asyncore loop with a closed-socket error.
            log.debug("http server loop ended", exc_info=True)
