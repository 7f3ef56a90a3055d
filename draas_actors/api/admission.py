"""Which connections waitress keeps, and for how long: slow or numerous clients cannot lock the others out.

waitress reads every connection on one I/O loop, and past ``connection_limit`` open connections it stops accepting
until some close. A connection that trickles one header line every few seconds is never idle long enough for
``channel_timeout``, so 100 of them locked every other client out for as long as they liked. Three rules replace
waitress's limit, all applied on its loop thread by ``AdmittingServer`` and ``AdmittedChannel``:

1. **Time to send a request.** A request's headers and body must all arrive within ``request_timeout`` (10 s) of its
   first byte; a connection's first request, within that time of the connection opening. Past it the connection is
   answered ``408`` and closed (closed without an answer if it sent nothing). A request being served is never
   timed out, and between requests an idle keep-alive connection is left to ``channel_timeout`` as before.
2. **Connections per address.** One client address holds at most ``connections_per_address`` (32) connections. A
   further one takes the place of one of the address's own that is not serving a request (unauthenticated ones
   first, then the one that has waited longest: a client that leaks idle keep-alive connections loses the oldest);
   when all are serving, it is closed as soon as it is accepted. Loopback is an address like any other. Peers in
   ``[network] trustedProxies`` are exempt: a proxy carries many clients and bounds them itself.
3. **A reserve for authenticated callers.** ``connection_limit`` (100) connections are open to anyone. When they
   are taken, a new connection gets one of ``reserved_connections`` (32) further slots. A reserve slot is *kept*
   only by a connection that is serving a request or on which the app has authenticated a request (a valid
   credential, not merely a credential header; ``auth.AUTHENTICATED``). When the reserve is full too, a newcomer
   takes the place of the unauthenticated, unserved reserve connection that has waited longest; when there is none,
   the newcomer is closed. So a flood of slow connections fills the pool and then only pushes the reserve's slow
   connections out, one per newcomer, while a daemon or an operator, whose request arrives in one packet, is
   served at once and then keeps its keep-alive connection.

A request with no credential (``/healthz`` from a probe) also gets a reserve slot while the pool is full; it keeps
it only until its answer is sent. Behind nginx (see docs/security.md) these are a second line: nginx bounds a
request's time itself and reads it in full before it opens the upstream request.

This leans on waitress internals like ``dispatch`` does (``BaseWSGIServer.handle_accept``/``readable``/
``maintenance``, ``HTTPChannel.received``/``request``/``requests``/outbufs, ``WSGITask.environ``), stable across
waitress 2 and 3; setup.cfg pins waitress below 4.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, TcpWSGIServer
from waitress.task import WSGITask

from ..security import Network, address_in
from .auth import AUTHENTICATED

log = logging.getLogger(__name__)
WARN_EVERY = 60.0  # seconds between two warnings that the general pool is full (under a flood it fills again and again)

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class Pool(enum.Enum):
    GENERAL = "general"
    RESERVE = "reserve"


@dataclass(frozen=True, kw_only=True)
class ConnectionRules:
    """The numbers of rules 2 and 3 of the module docstring (defaults in ``ServerLimits``)."""

    connection_limit: int
    reserved_connections: int
    connections_per_address: int
    uncapped: tuple[Network, ...]


class Held(Protocol):
    """What admission needs of an open connection."""

    address: str
    pool: Pool
    authenticated: bool  # the app authenticated one of its requests
    waiting_since: float  # when it opened or last received the first byte of a request (monotonic)

    def busy(self) -> bool:
        """Serving a request, or closing: never replaced."""
        ...


class Admission:
    """The bookkeeping of rules 2 and 3: who holds which slot. Only waitress's loop thread calls it."""

    def __init__(self, rules: ConnectionRules) -> None:
        self.rules = rules
        self.by_address: dict[str, dict[int, Held]] = {}
        self.general = 0
        self.reserve: dict[int, Held] = {}
        self._warned_at = -WARN_EVERY

    def admit(self, address: str) -> tuple[Pool, Held | None] | None:
        """The pool a new connection from ``address`` joins and the connection it replaces; None to refuse it."""
        rules = self.rules
        own = self.by_address.get(address, {})
        if len(own) >= rules.connections_per_address and not self._uncapped(address):
            # The address replaces one of its own: unauthenticated first, then the one that has waited longest.
            victim = _oldest(own.values(), lambda held: (held.authenticated, held.waiting_since))
            return None if victim is None else (victim.pool, victim)
        if self.general < rules.connection_limit:
            return Pool.GENERAL, None
        if len(self.reserve) < rules.reserved_connections:
            return Pool.RESERVE, None
        victim = _oldest(
            (held for held in self.reserve.values() if not held.authenticated), lambda held: (0, held.waiting_since)
        )
        return None if victim is None else (Pool.RESERVE, victim)

    def opened(self, held: Held) -> None:
        self.by_address.setdefault(held.address, {})[id(held)] = held
        if held.pool is Pool.GENERAL:
            self.general += 1
            now = time.monotonic()
            if self.general == self.rules.connection_limit and now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning("all %d general connections are taken; new ones go to the reserve", self.general)
        else:
            self.reserve[id(held)] = held

    def closed(self, held: Held) -> None:
        own = self.by_address.get(held.address, {})
        own.pop(id(held), None)
        if not own:
            self.by_address.pop(held.address, None)
        if held.pool is Pool.GENERAL:
            self.general -= 1
        else:
            self.reserve.pop(id(held), None)

    def counts(self) -> dict[str, int]:
        return {"general": self.general, "reserve": len(self.reserve), "addresses": len(self.by_address)}

    def _uncapped(self, address: str) -> bool:
        return bool(self.rules.uncapped) and address_in(address, self.rules.uncapped)


class AdmittedTask(WSGITask):  # type: ignore[misc]
    """waitress's WSGI task, which tells its channel when the app authenticated the request (rule 3)."""

    def execute(self) -> None:
        try:
            super().execute()
        finally:
            if self.environ is not None and self.environ.get(AUTHENTICATED):
                self.channel.authenticated = True


class AdmittedChannel(HTTPChannel):  # type: ignore[misc]
    """waitress's connection, with the clock of rule 1 and the state rule 3 looks at."""

    task_class = AdmittedTask
    pool = Pool.GENERAL
    authenticated = False  # set from a worker thread, read on the loop: a plain attribute is enough
    _admitted = False

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None, pool: Pool = Pool.GENERAL) -> None:
        self.address = _address_of(addr)
        self.pool = pool  # before waitress's __init__, which registers the channel (add_channel)
        self.waiting_since: float = time.monotonic()
        self.timing = True  # False between requests and while one is served (rule 1 does not apply)
        super().__init__(server, sock, addr, adj, map=map)

    def received(self, data: bytes) -> bool:
        if data and not self.timing:  # the first byte of a new request
            self.timing = True
            self.waiting_since = time.monotonic()
        result: bool = super().received(data)
        if self.request is None:  # every request received so far is complete (and handed to a worker)
            self.timing = False
        return result

    def busy(self) -> bool:
        return bool(self.requests or self.will_close or self.close_when_flushed)

    def overdue(self, now: float, limit: float) -> bool:
        return self.timing and not self.requests and now - self.waiting_since > limit

    def time_out(self) -> None:
        """Rule 1: answer 408 when part of a request came, else just close."""
        self.timing = False
        log.debug("closing a connection from %s: no complete request within the request timeout", self.address)
        if self.request is None:
            self.will_close = True
            return
        with self.outbuf_lock:
            self.outbufs[-1].append(REQUEST_TIMEOUT)
            self.current_outbuf_count += len(REQUEST_TIMEOUT)
            self.total_outbufs_len += len(REQUEST_TIMEOUT)
        self.close_when_flushed = True

    def add_channel(self, map: Any = None) -> None:
        super().add_channel(map)
        self.server.admission.opened(self)
        self._admitted = True

    def del_channel(self, map: Any = None) -> None:
        if self._admitted:
            self._admitted = False
            self.server.admission.closed(self)
        super().del_channel(map)


class AdmittingServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP listener that always accepts, then admits, replaces or refuses by ``Admission``."""

    channel_class = AdmittedChannel
    next_channel_cleanup: float  # waitress's; declared so that readable() can update it (waitress is untyped)

    def __init__(self, *args: Any, admission: Admission, request_timeout: float, **kwargs: Any) -> None:
        self.admission = admission
        self.request_timeout = request_timeout
        super().__init__(*args, **kwargs)

    def readable(self) -> bool:
        # waitress's own version stops accepting at connection_limit, and then nobody gets in: accept, then decide.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:
            if self.adj.log_socket_errors:
                self.logger.warning("server accept() threw an exception", exc_info=True)
            return
        decision = self.admission.admit(_address_of(addr))
        if decision is None:
            conn.close()  # cheaper than an answer, and a flood learns nothing from one
            return
        pool, victim = decision
        if victim is not None:
            victim.handle_close()  # type: ignore[attr-defined]
        self.channel_class(self, conn, addr, self.adj, map=self._map, pool=pool)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        clock = time.monotonic()
        for channel in list(self.active_channels.values()):
            if isinstance(channel, AdmittedChannel) and channel.overdue(clock, self.request_timeout):
                channel.time_out()


def create_admitting_server(
    app: Any, *, dispatcher: Any, rules: ConnectionRules, request_timeout: float, **adjustments: Any
) -> AdmittingServer | MultiSocketServer:
    """``waitress.create_server`` for TCP listeners, with one ``Admission`` shared by all of them."""
    adj = Adjustments(**adjustments)
    socket_map: dict[int, Any] = {}
    admission = Admission(rules)
    servers = [
        AdmittingServer(
            app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo, admission=admission,
            request_timeout=request_timeout,
        )
        for sockinfo in adj.listen
    ]
    if len(servers) == 1:
        return servers[0]
    listening = [(server.effective_host, server.effective_port) for server in servers]
    return MultiSocketServer(socket_map, adj, listening, dispatcher, servers[-1].log_info)


def admission_of(server: BaseWSGIServer | MultiSocketServer) -> Admission:
    if isinstance(server, AdmittingServer):
        return server.admission
    return next(s.admission for s in server.map.values() if isinstance(s, AdmittingServer))


def _oldest(candidates: Iterable[Held], order: Callable[[Held], tuple[bool | int, float]]) -> Held | None:
    return min((held for held in candidates if not held.busy()), key=order, default=None)


def _address_of(addr: Any) -> str:
    return str(addr[0] if isinstance(addr, tuple) and addr else addr)
