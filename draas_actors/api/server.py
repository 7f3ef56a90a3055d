"""waitress in a thread, with a clean stop: for run.py and for tests that need real HTTP."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import waitress
from waitress import wasyncore
from waitress.server import BaseWSGIServer, MultiSocketServer

from .dispatch import fair_dispatcher, hold_after_refusal

log = logging.getLogger(__name__)

# waitress refuses a body on its own (a plain-text 413 that the app never sees, so it is not audited) only
# beyond this multiple of the app's limit: bodies a little over the limit get the app's JSON 413 and an audit
# entry, and nothing much larger is ever buffered.
BODY_BACKSTOP = 4


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """waitress's defences against slow and greedy clients (``[server]`` and ``[limits] maxBodyBytes``)."""

    channel_timeout: int = 30  # seconds a connection may send nothing before it is closed (waitress: 120)
    connection_limit: int = 100  # open connections; beyond it waitress stops accepting until some close
    max_header_bytes: int = 65536  # request line + headers (waitress: 256 KiB); beyond it a 431
    max_body_bytes: int = 1_048_576
    refusal_hold: float = 1.0  # seconds a caller's next requests wait after a 429 (see dispatch)

    def threads_per_caller(self, threads: int) -> int:
        """At most this many worker threads serve one caller at once (see ``dispatch``)."""
        return max(1, threads // 4)

    def waitress_options(self) -> dict[str, Any]:
        return {
            "channel_timeout": self.channel_timeout,
            # How often idle channels are looked for: a slow client is closed within 1.5 x channel_timeout.
            "cleanup_interval": max(1, min(30, self.channel_timeout // 2)),
            "connection_limit": self.connection_limit,
            "max_request_header_size": self.max_header_bytes,
            "max_request_body_size": self.max_body_bytes * BODY_BACKSTOP,
            # Larger reads: a body arrives in fewer turns of the one I/O loop that every client shares.
            "recv_bytes": 65536,
            # poll(): select() fails outright on a descriptor above 1024.
            "asyncore_use_poll": True,
            # waitress 3 drops X-Forwarded-For unless it trusts the peer itself (one address, no CIDRs); the app
            # decides instead, by [network] trustedProxies (api/network.py), so the header must reach it.
            "clear_untrusted_proxy_headers": False,
        }


class HttpServer:
    def __init__(
        self, app: Any, *, host: str, port: int, threads: int = 8, limits: ServerLimits = ServerLimits()
    ) -> None:
        dispatcher = fair_dispatcher(threads, limits.threads_per_caller(threads))
        server = waitress.create_server(
            hold_after_refusal(app, dispatcher, limits.refusal_hold), host=host, port=port, threads=threads,
            ident="draas", _dispatcher=dispatcher, **limits.waitress_options()
        )
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
            # First the workers, while the loop still runs: each finishes the request it is serving and the loop
            # sends the answer; requests not yet started are cancelled. (Closing the sockets first cut those
            # answers off, and each such worker failed writing to the closed trigger.) waitress stops its workers
            # only on KeyboardInterrupt inside run(); MultiSocketServer.close does it itself.
            server.task_dispatcher.shutdown(timeout=timeout)
            # Closing only the listener leaves an idle keep-alive connection holding waitress's loop open until
            # its channel_timeout (120 s): close every socket, from inside the loop's thread (its trigger).
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map, ignore_all=True))
            except OSError:
                # The loop, already awake for a response, ran our thunk between its append and this write,
                # and the thunk closed the trigger along with everything else: the stop is done.
                log.debug("http server trigger closed by the stop itself", exc_info=True)
            self._thread.join(timeout)
        else:
            server.close()
            self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):
            # close() from another thread ends the asyncore loop with a closed-socket error.
            log.debug("http server loop ended", exc_info=True)
