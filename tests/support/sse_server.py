"""A scriptable HTTP/SSE server on 127.0.0.1 for the http trigger's fault matrix.

Plain sockets in threads, so a test controls the exact bytes, their chunking,
stalls, status codes, headers and how the connection ends, independently of
the event loop the trigger runs in. Every response closes its connection.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    """What the server received; header names are lower-case."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)


@dataclass(frozen=True)
class Stall:
    """Send nothing more; hold the connection until the client goes away."""


@dataclass(frozen=True)
class Pause:
    """Wait this long before the next action (a scenario timing, not a test synchronisation)."""

    seconds: float


@dataclass(frozen=True)
class Signal:
    """Set ``event`` once everything before it has been written."""

    event: threading.Event


Action = bytes | Stall | Pause | Signal


@dataclass
class Reply:
    """One response: status, headers, then the body actions in order.

    With ``chunked`` each bytes action goes out as one HTTP chunk and a clean
    end sends the last chunk; ``cut`` closes without it (a broken body). Without
    ``chunked`` the body is delimited by closing the connection.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[Action] = field(default_factory=list)
    chunked: bool = True
    cut: bool = False


def sse(*frames: bytes, **kw: object) -> Reply:
    """A 200 text/event-stream reply sending each frame as its own chunk."""
    headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache")]
    return Reply(200, headers, list(frames), **kw)  # type: ignore[arg-type]


def json_reply(status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """A complete JSON answer with a Content-Length."""
    hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]
    return Reply(status, hdrs, [body], chunked=False)


REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
Handler = Callable[[Request], Reply]


class SSEServer:
    """Routes by path to a Reply (or a function of the Request); records requests and disconnects."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.routes: dict[str, Reply | Handler] = {}
        self.requests: list[Request] = []
        self.disconnected = threading.Event()
        """Set when a client went away from a connection the server was still serving."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def route(self, path: str, reply: Reply | Handler) -> None:
        self.routes[path] = reply

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def start(self) -> SSEServer:
        self._accepting.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in [self._accepting, *self._threads]:
            thread.join(timeout=5)

    # ------------------------------------------------------------ internals

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        conn: socket.socket = raw
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(raw, server_side=True)
                with self._lock:
                    self._conns.append(conn)
            request = self._read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            route = self.routes.get(request.path)
            if route is None:
                reply = json_reply(404, b'{"detail":"Not Found"}')
            else:
                reply = route if isinstance(route, Reply) else route(request)
            self._send(conn, reply)
        except (OSError, ssl.SSLError):
            self.disconnected.set()  # the client went away while being served
        finally:
            conn.close()

    @staticmethod
    def _read_request(conn: socket.socket) -> Request | None:
        data = b""
        while b"\r\n\r\n" not in data:
            got = conn.recv(65536)
            if not got:
                return None
            if not data and got[:1] == b"\x16":  # a TLS ClientHello: answer as a plain server does
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return None
            data += got
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        first, *lines = head.split("\r\n")
        method, target, _ = first.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Request(method, target, headers)

    def _send(self, conn: socket.socket, reply: Reply) -> None:
        reason = REASONS.get(reply.status, "Status")
        lines = [f"HTTP/1.1 {reply.status} {reason}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        if reply.chunked:
            lines.append("Transfer-Encoding: chunked")
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for action in reply.body:
            if isinstance(action, bytes):
                if reply.chunked:
                    conn.sendall(b"%x\r\n%s\r\n" % (len(action), action))
                else:
                    conn.sendall(action)
            elif isinstance(action, Signal):
                action.event.set()
            elif isinstance(action, Pause):
                threading.Event().wait(action.seconds)
            else:
                self._hold(conn)
                return
        if reply.chunked and not reply.cut:
            conn.sendall(b"0\r\n\r\n")

    def _hold(self, conn: socket.socket) -> None:
        """Stall until the peer closes (recv returns nothing), then record the disconnect."""
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        self.disconnected.set()
