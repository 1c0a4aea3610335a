"""A small fault-injecting HTTP proxy on 127.0.0.1, written for galton's reliability tests.

It forwards every request to an upstream server (a real Label Studio) and, while a fault
rule matches, breaks the exchange on purpose:

``status``    answer ``code`` (500, 502, 503, ...) without forwarding (nothing reaches upstream)
``delay``     forward, then hold the answer ``seconds`` (past the client's timeout: upstream
              has applied the request, the client does not know it)
``truncate``  forward, then send the headers (with the full ``Content-Length``) and only
              ``fraction`` of the body, and close the connection half-way through it
``reset``     close the connection without an answer (nothing forwarded)
``stop``      Label Studio stops: from this request on every request gets 502 (the proxy's
              upstream side is down) until :meth:`FaultProxy.upstream_up`
``down``      the server goes away: the listener closes (connections refused) and comes back
              by itself after ``seconds``

A rule matches requests whose method is in ``methods`` and whose path-with-query matches
``path`` (a regular expression searched in it); it skips the first ``after`` matches and
fires on the next ``count``. Server-level faults: :meth:`FaultProxy.down` closes the
listening socket (clients get "connection refused") and :meth:`FaultProxy.up` opens it
again on the same port; :meth:`FaultProxy.upstream_down` points the proxy at a closed port
(the proxy answers 502, as a gateway does when Label Studio has stopped) until
:meth:`FaultProxy.upstream_up`.

Every request is counted (``log``: method, path, what happened), so a test can prove the
fault really fired. Bodies and headers are never logged or printed (they carry tokens).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Fault", "FaultProxy"]

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "content-length"})


@dataclass
class Fault:
    """One programmable fault (see the module doc)."""

    kind: str  # "status" | "delay" | "truncate" | "reset" | "stop" | "down"
    path: str = ""
    methods: tuple[str, ...] = ("GET", "POST", "PATCH", "PUT", "DELETE")
    count: int = 1
    after: int = 0
    code: int = 503
    seconds: float = 0.0
    fraction: float = 0.5
    seen: int = 0
    fired: int = 0

    def take(self, method: str, target: str) -> bool:
        if method not in self.methods or not re.search(self.path, target):
            return False
        self.seen += 1
        if self.seen <= self.after or self.fired >= self.count:
            return False
        self.fired += 1
        return True


@dataclass
class Exchange:
    method: str
    path: str
    outcome: str  # "forwarded", a fault kind, "refused-upstream"
    status: int | None = None


@dataclass
class _State:
    upstream: tuple[str, int]
    faults: list[Fault] = field(default_factory=list)
    log: list[Exchange] = field(default_factory=list)
    upstream_alive: bool = True
    open: set[socket.socket] = field(default_factory=set)
    proxy: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # never print requests
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.open.add(self.connection)

    def finish(self) -> None:
        with self.server.state.lock:
            self.server.state.open.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with state.lock:
            fault = next((f for f in state.faults if f.take(self.command, self.path)), None)
            alive = state.upstream_alive
        kind = fault.kind if fault is not None else None
        if kind == "stop":
            with state.lock:
                state.upstream_alive = alive = False
            kind = None
        if kind == "down":
            self._record("down")
            threading.Thread(target=state.proxy.down_for, args=(fault.seconds,), daemon=True).start()
            kind = "reset"
        if kind == "reset":
            if fault is not None and fault.kind == "reset":
                self._record("reset")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "status":
            self._record("status", fault.code)
            self._answer(fault.code, [("Content-Type", "application/json")],
                         b'{"detail": "fault injected by the test proxy"}')
            return
        if not alive:
            self._record("refused-upstream", 502)
            self._answer(502, [("Content-Type", "application/json")], b'{"detail": "upstream is down"}')
            return
        try:
            status, headers, payload = self._forward(body)
        except OSError:
            self._record("refused-upstream", 502)
            self._answer(502, [("Content-Type", "application/json")], b'{"detail": "upstream unreachable"}')
            return
        if kind == "delay":
            self._record("delay", status)
            time.sleep(fault.seconds)
            try:
                self._answer(status, headers, payload)
            except OSError:  # the client gave up waiting
                pass
            return
        if kind == "truncate":
            self._record("truncate", status)
            cut = int(len(payload) * fault.fraction)
            self._answer(status, headers, payload[:cut], length=len(payload))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._record("forwarded", status)
        self._answer(status, headers, payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.server.state.upstream
        conn = http.client.HTTPConnection(host, port, timeout=600)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = f"{host}:{port}"
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, payload
        finally:
            conn.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes, *,
                length: int | None = None) -> None:
        self.send_response_only(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload) if length is None else length))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _record(self, outcome: str, status: int | None = None) -> None:
        with self.server.state.lock:
            self.server.state.log.append(Exchange(self.command, self.path, outcome, status))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: _State


class FaultProxy:
    """The proxy: ``FaultProxy(upstream_url)``, then ``.url`` goes where Label Studio's URL went.

    Use as a context manager, or call :meth:`close` (stops the listener and its threads).
    """

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.state = _State(self._upstream)
        self.state.proxy = self
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ faults
    def add(self, fault: Fault) -> Fault:
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def fired(self) -> int:
        with self.state.lock:
            return sum(f.fired for f in self.state.faults) + sum(
                1 for e in self.state.log if e.outcome == "refused-upstream")

    def count(self, method: str | None = None, path: str = "", outcome: str | None = None) -> int:
        with self.state.lock:
            return sum(1 for e in self.state.log if (method is None or e.method == method)
                       and re.search(path, e.path) and (outcome is None or e.outcome == outcome))

    # ------------------------------------------------------------------ server-level faults
    def up(self) -> None:
        """(Re)open the listener, on the same port as before once it has one."""
        if self._server is not None:
            return
        deadline = time.monotonic() + 10
        while True:
            try:
                server = _Server(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        server.state = self.state
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Close the listener: new connections are refused until :meth:`up`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self.state.lock:  # and drop the kept-alive connections: a stopped server has none
            for connection in list(self.state.open):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def down_for(self, seconds: float) -> threading.Timer:
        """Refuse connections now and come back by itself after ``seconds``."""
        self.down()
        timer = threading.Timer(seconds, self.up)
        timer.daemon = True
        timer.start()
        return timer

    def upstream_down(self) -> None:
        with self.state.lock:
            self.state.upstream_alive = False

    def upstream_up(self) -> None:
        with self.state.lock:
            self.state.upstream_alive = True

    def close(self) -> None:
        self.down()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
