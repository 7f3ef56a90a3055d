"""waitress in a thread, with a clean stop: for run.py and for tests that need real HTTP."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer

from ..security import LimitSettings, Network
from ..streams import StreamThreads
from .admission import ConnectionRules, admission_of, create_admitting_server
from .dispatch import fair_dispatcher, hold_after_refusal

log = logging.getLogger(__name__)

# waitress refuses a body on its own (a plain-text 413 that the app never sees, so it is not audited) only
# beyond this multiple of the app's limit: bodies a little over the limit get the app's JSON 413 and an audit
# entry, and nothing much larger is ever buffered.
BODY_BACKSTOP = 4


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """waitress's defences against slow and greedy clients (``[server]`` and ``[limits] maxBodyBytes``).

    The connection rules (request timeout, per address, reserve) are explained in ``admission``.
    """

    channel_timeout: int = 30  # seconds an idle connection may send nothing before it is closed (waitress: 120)
    request_timeout: float = 10.0  # seconds to receive a request's headers and body, from its first byte: then 408
    connection_limit: int = 100  # connections open to anyone
    reserved_connections: int = 32  # further connections, kept only by authenticated callers
    connections_per_address: int = 32  # open connections from one client address; see admission
    uncapped: tuple[Network, ...] = ()  # addresses without a per-address cap ([network] trustedProxies)
    max_header_bytes: int = 65536  # request line + headers (waitress: 256 KiB); beyond it a 431
    max_body_bytes: int = LimitSettings.max_body_bytes  # [limits] maxBodyBytes: one setting, one default
    refusal_hold: float = 1.0  # seconds a caller's next requests wait after a 429 (see dispatch)

    def threads_per_caller(self, threads: int) -> int:
        """At most this many worker threads serve one caller at once (see ``dispatch``)."""
        return max(1, threads // 4)

    def connection_rules(self) -> ConnectionRules:
        return ConnectionRules(
            connection_limit=self.connection_limit,
            reserved_connections=self.reserved_connections,
            connections_per_address=self.connections_per_address,
            uncapped=self.uncapped,
        )

    def waitress_options(self) -> dict[str, Any]:
        return {
            "channel_timeout": self.channel_timeout,
            # How often connections are looked over for both timeouts (a pass over a few hundred costs microseconds):
            # a slow request is closed within request_timeout + 1 s, an idle connection within channel_timeout + 1 s.
            "cleanup_interval": 1,
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
        self, app: Any, *, host: str, port: int, threads: int = 8, limits: ServerLimits = ServerLimits(),
        streams: StreamThreads | None = None,
    ) -> None:
        """``streams``: the control plane's (``ControlPlane.streams``), where live streams run; without it every
        stream request is answered 503."""
        dispatcher = fair_dispatcher(threads, limits.threads_per_caller(threads), streams)
        self._server = create_admitting_server(
            hold_after_refusal(app, dispatcher, limits.refusal_hold), dispatcher=dispatcher,
            rules=limits.connection_rules(), request_timeout=limits.request_timeout, host=host, port=port,
            threads=threads, ident="draas", **limits.waitress_options()
        )
        self._thread = threading.Thread(target=self._serve, name="draas-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def connections(self) -> dict[str, int]:
        """Open connections in the general pool and in the reserve, and client addresses (read without a lock)."""
        return admission_of(self._server).counts()

    def start(self) -> HttpServer:
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
