"""The HTTP side of the fake API server: routing, auth, JSON responses and chunked watch streams.

``ApiHttpServer`` is a ``ThreadingHTTPServer`` on 127.0.0.1 and an ephemeral port, one thread per connection; it
remembers its connections so that stopping can close them all and join their threads to a deadline. The handler
turns requests into calls on the ``FakeApiServer`` and never holds its lock while writing to a socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

from tests.kube.selectors import (
    PodFilter,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

if TYPE_CHECKING:
    from tests.kube.fake_apiserver import FakeApiServer, Watch

log = logging.getLogger(__name__)

TOKEN: Final = "fake-token"
# How often an idle watch checks whether its client hung up, so that ``active_watches`` forgets it.
CLIENT_PROBE_INTERVAL: Final = 0.1
MAX_CHUNK: Final = 256 * 1024
VERSION_INFO: Final = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def status_object(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``meta/v1 Status`` as kube-apiserver sends for errors."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        status["details"] = details
    return status


class HttpError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status_object(code, reason, message, details)


def event_line(kind: str, object_json: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + object_json + b"}\n"


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_PODS_ALL = re.compile(r"^/api/v1/pods$")
_PODS_IN = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
_POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$")
_PUBLIC = ("/version", "/healthz", "/readyz", "/livez")


class ApiHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: FakeApiServer) -> None:
        self.api = api
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), name="fake-apiserver-conn", daemon=True
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("fake apiserver: error on a connection from %s", client_address, exc_info=True)

    def close_all_connections(self) -> None:
        with self._connections_lock:
            sockets = list(self._connections)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_threads(self, deadline: float) -> None:
        with self._connections_lock:
            threads = list(self._connections.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHttpServer
    server_version = "fake-kube-apiserver"
    _streaming = False  # set once a watch response has started: no other response can follow on it

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake apiserver: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        self._streaming = False
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        query = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        api.record_request(method, path, query)
        body = self._read_body()
        try:
            authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            if path not in _PUBLIC and api.require_token and not authorized:
                raise HttpError(401, "Unauthorized", "Unauthorized")
            self._route(method, path, query, body)
        except HttpError as error:
            self._send_json(error.status["code"], error.status)
        except Exception:
            # A bug in the fake must show up in the test's log, and as a 500 rather than a hung client.
            log.exception("fake apiserver: %s %s failed", method, self.path)
            self.close_connection = True
            if not self._streaming:
                self._send_json(500, status_object(500, "InternalError", "the fake API server failed; see the log"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        if path == "/version":
            return self._only(method, "GET", lambda: self._send_json(200, VERSION_INFO))
        if path in ("/healthz", "/readyz", "/livez"):
            return self._only(method, "GET", lambda: self._send_text(200, "ok"))
        if path == "/api":
            versions = {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }
            return self._only(method, "GET", lambda: self._send_json(200, versions))
        if _PODS_ALL.match(path):
            return self._only(method, "GET", lambda: self._pods(None, query))
        if match := _PODS_IN.match(path):
            namespace = match[1]
            return self._only(method, "GET", lambda: self._pods(namespace, query))
        if match := _POD.match(path):
            namespace, name = match[1], match[2]
            if method == "GET":
                return self._get_pod(namespace, name)
            return self._only(method, "DELETE", lambda: self._delete_pod(namespace, name, query, body))
        raise HttpError(404, "NotFound", "the server could not find the requested resource")

    def _only(self, method: str, allowed: str, action: Callable[[], None]) -> None:
        if method != allowed:
            raise HttpError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        action()

    def _get_pod(self, namespace: str, name: str) -> None:
        pod = self.server.api.get_pod(namespace, name)
        if pod is None:
            raise HttpError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        self._send_json(200, pod)

    def _delete_pod(self, namespace: str, name: str, query: dict[str, str], body: bytes) -> None:
        options: dict[str, Any] = {}
        if body.strip():
            try:
                options = json.loads(body)
            except ValueError as error:
                raise HttpError(400, "BadRequest", f"request body: not JSON DeleteOptions: {error}") from error
            if not isinstance(options, dict):
                raise HttpError(400, "BadRequest", "request body: DeleteOptions must be a JSON object")
        grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        try:
            grace = int(grace) if grace is not None else None
        except (TypeError, ValueError) as error:
            raise HttpError(400, "BadRequest", f"gracePeriodSeconds: not an integer: {grace!r}") from error
        preconditions = options.get("preconditions") or {}
        if not isinstance(preconditions, dict):
            raise HttpError(400, "BadRequest", "preconditions: must be a JSON object")
        deleted = self.server.api.delete_over_http(namespace, name, grace, preconditions)
        self._send_json(200, deleted)

    def _pods(self, namespace: str | None, query: dict[str, str]) -> None:
        try:
            filter_ = PodFilter(
                namespace,
                parse_label_selector(query.get("labelSelector", "")),
                parse_field_selector(query.get("fieldSelector", "")),
            )
        except SelectorError as error:
            raise HttpError(400, "BadRequest", str(error)) from error
        resource_version = query.get("resourceVersion")
        if resource_version not in (None, "") and not resource_version.isdigit():
            raise HttpError(400, "BadRequest", f"resourceVersion: invalid value {resource_version!r}: not a decimal")
        if query.get("watch", "").lower() in ("true", "1"):
            timeout = _optional_int(query, "timeoutSeconds")
            bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
            return self._watch(filter_, resource_version, timeout, bookmarks)
        limit = _optional_int(query, "limit")
        self._send_json(
            200, self.server.api.serve_list(filter_, limit if limit else None, query.get("continue") or None)
        )

    def _watch(self, filter_: PodFilter, resource_version: str | None, timeout: int | None, bookmarks: bool) -> None:
        api = self.server.api
        opened = api.open_watch(filter_, resource_version)
        self._streaming = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if isinstance(opened, dict):
            self._chunk(event_line("ERROR", dumps(opened)))
            self._chunk(b"")
            return
        watch = opened
        try:
            self._stream(watch, timeout, bookmarks)
        except OSError:
            self.close_connection = True  # the client hung up
        finally:
            api.close_watch(watch)

    def _stream(self, watch: Watch, timeout: int | None, bookmarks: bool) -> None:
        api = self.server.api
        now = time.monotonic()
        deadline = now + timeout if timeout and timeout > 0 else None
        next_bookmark = now + api.bookmark_interval if bookmarks else None
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._chunk(b"")
                return
            wake_at = min(t for t in (deadline, next_bookmark, now + CLIENT_PROBE_INTERVAL) if t is not None)
            data, state, idle_rv = api.next_batch(watch, wake_at)
            if data:
                self._chunk(data)
            if state != "open":
                return self._end(state)
            if idle_rv is not None:
                if next_bookmark is not None and time.monotonic() >= next_bookmark:
                    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(idle_rv)}}
                    self._chunk(event_line("BOOKMARK", dumps(bookmark)))
                    next_bookmark = time.monotonic() + api.bookmark_interval
                if self._client_gone():
                    raise ConnectionAbortedError("the watch client closed its connection")

    def _end(self, state: str) -> None:
        if state == "overflow":
            status = status_object(
                410, "Expired", f"the watch fell more than {self.server.api.watch_queue_limit} events behind"
            )
            self._chunk(event_line("ERROR", dumps(status)))
            self._chunk(b"")
        elif state == "clean":
            self._chunk(b"")
        elif state == "stop":
            self.close_connection = True
            self._chunk(b"")
        elif state in ("eof", "reset"):
            self._abort(reset=state == "reset")

    def _abort(self, *, reset: bool) -> None:
        """Close the socket now, without the final chunk: with SO_LINGER 0 the kernel sends RST instead of FIN."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        # rfile holds a reference to the socket: close it too so that close() really closes the descriptor.
        self.rfile.close()
        self.wfile.close()
        sock.close()

    def _client_gone(self) -> bool:
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n")

    def _send_json(self, code: int, value: Any) -> None:
        self._send(code, dumps(value), "application/json")

    def _send_text(self, code: int, text: str) -> None:
        self._send(code, text.encode(), "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _optional_int(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as error:
        raise HttpError(400, "BadRequest", f"{name}: invalid value {value!r}: not an integer") from error
