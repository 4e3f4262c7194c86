"""The operations HTTP server: health, metrics, /status, the console page, control and /openapi.json.

It runs in its own daemon thread on the standard library's threading server
so that a slow scraper or a busy event loop never delays the other: the
schedule never waits on it, and it keeps answering while a run is in flight.
Whatever the port receives, it holds at most MAX_CONNECTIONS connections
(a thread and a descriptor each; the excess is closed at once, not queued)
and drops a client that sends nothing for READ_TIMEOUT_SECONDS, so a flood
of slow connections can neither stop /livez for long nor take the
descriptors the runs need.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from proxbox_scheduler.config import name_of
from proxbox_scheduler.ops.address import local_address
from proxbox_scheduler.ops.control import UNAUTHORIZED, Action, Control
from proxbox_scheduler.ops.openapi import DOCUMENT
from proxbox_scheduler.ops.page import SCRIPT, View, render
from proxbox_scheduler.ops.page_format import parse_window
from proxbox_scheduler.telemetry.metrics import CONTENT_TYPE, Metrics
from proxbox_scheduler.telemetry.status import StatusStore

log = logging.getLogger("proxbox_scheduler.server")
MAX_CONNECTIONS = 32
"""Connections served at once; more are closed as soon as they are accepted."""
READ_TIMEOUT_SECONDS = 5.0
"""A client silent this long (unfinished headers, a stalled read) is disconnected."""


JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
MAX_BODY = 65536
"""Bytes of a request body read (and ignored): the control endpoints take none."""
_OPENAPI_BODY = json.dumps(DOCUMENT, indent=1).encode()
_SCRIPT_BODY = SCRIPT.encode()
"""Bodies that never change, encoded once."""


@dataclass(frozen=True)
class PageSettings:
    """The page's defaults that come from the configuration: the stale threshold (seconds)."""

    stale_after: float = 86400.0


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "proxbox-scheduler"
    timeout = READ_TIMEOUT_SECONDS

    def do_HEAD(self) -> None:
        """Like GET without the body (load balancers and uptime checkers probe with HEAD)."""
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        route = READ_ROUTES.get(url.path)
        if route is not None:
            route(self, query)
        elif url.path.startswith("/jobs/"):
            self._send(405, TEXT, b"use POST\n", allow="POST")
        else:
            self._send(404, TEXT, b"not found\n")

    def do_POST(self) -> None:
        self._drain()
        path = urlsplit(self.path).path
        parts = path.split("/")
        control = self.server.control
        if len(parts) != 4 or parts[1] != "jobs":
            if path in READ_ROUTES:
                self._send(405, TEXT, b"use GET\n", allow="GET")
            else:
                self._send(404, TEXT, b"not found\n")
            return
        if control is None:
            self._json(404, {"error": f"control is off: set {name_of('control_token_file')} to turn it on"})
            return
        if not control.authorized(self.headers.get("Authorization")):
            self._json(UNAUTHORIZED.code, UNAUTHORIZED.body, authenticate=True)
            return
        try:
            action = Action(parts[3])
        except ValueError:
            self._json(404, {"error": f"no action {parts[3]!r}: expected run, pause or resume"})
            return
        answer = control.act(unquote(parts[2]), action)
        self._json(answer.code, answer.body)

    def _other(self) -> None:
        self._drain()
        allow = "POST" if urlsplit(self.path).path.startswith("/jobs/") else "GET"
        self._send(405, TEXT, b"method not allowed\n", allow=allow)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _other

    # ------------------------------------------------------------ read-only routes

    def livez(self, query: Query) -> None:
        ok, detail = self.server.status.live()
        self._send(200 if ok else 503, TEXT, detail.encode() + b"\n")

    def readyz(self, query: Query) -> None:
        ok, detail = self.server.status.ready()
        self._send(200 if ok else 503, TEXT, detail.encode() + b"\n")

    def metrics(self, query: Query) -> None:
        self._send(200, CONTENT_TYPE, self.server.metrics.render())

    def status(self, query: Query) -> None:
        job = _one(query, "job")
        if job is None:
            self._json(200, self.server.status.snapshot())
            return
        try:
            snapshot = self.server.status.snapshot(job)
        except KeyError:
            self._json(404, {"error": f"no job named {job!r}"})
            return
        self._json(200, snapshot)

    def page(self, query: Query) -> None:
        settings = self.server.page
        try:
            window_raw = _one(query, "window") or View.window_raw
            window = parse_window(window_raw, View.window)
            stale = parse_window(_one(query, "stale"), settings.stale_after)
        except ValueError as exc:
            self._send(400, TEXT, f"{exc}\n".encode())
            return
        view = View(datetime.now(UTC), window, window_raw, stale, self.server.control is not None)
        self._send(200, "text/html; charset=utf-8", render(self.server.status.snapshot(), view).encode())

    def script(self, query: Query) -> None:
        self._send(200, "text/javascript; charset=utf-8", _SCRIPT_BODY)

    def openapi(self, query: Query) -> None:
        self._send(200, JSON, _OPENAPI_BODY)

    # ------------------------------------------------------------ writing

    def _drain(self) -> None:
        try:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        except ValueError:
            length = 0
        if length > 0:
            self.rfile.read(length)

    def _json(self, code: int, body: dict[str, Any], *, authenticate: bool = False) -> None:
        extra = {"WWW-Authenticate": "Bearer"} if authenticate else {}
        self._send(code, JSON, json.dumps(body, indent=1).encode(), **extra)

    def _send(
        self, code: int, content_type: str, body: bytes, allow: str | None = None, **extra: str
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


Query = dict[str, list[str]]
READ_ROUTES: dict[str, Callable[[_Handler, Query], None]] = {
    "/livez": _Handler.livez,
    "/readyz": _Handler.readyz,
    "/metrics": _Handler.metrics,
    "/status": _Handler.status,
    "/": _Handler.page,
    "/page.js": _Handler.script,
    "/openapi.json": _Handler.openapi,
}


def _one(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst waits in the kernel to be accepted (and closed if over the cap)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (a probe timing out) is not worth a traceback."""
        log.debug("ops request from %s failed", client_address, exc_info=True)

    def __init__(
        self,
        address: tuple[str, int],
        status: StatusStore,
        metrics: Metrics,
        control: Control | None,
        page: PageSettings,
    ) -> None:
        self.status, self.metrics, self.control, self.page = status, metrics, control, page
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread while a slot is free; otherwise close the connection now."""
        if not self._slots.acquire(blocking=False):
            log.debug("ops server busy: closing a connection from %s", client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class OpsServer:
    """Owns the listening socket and its thread."""

    def __init__(
        self,
        host: str,
        port: int,
        status: StatusStore,
        metrics: Metrics,
        *,
        control: Control | None = None,
        page: PageSettings | None = None,
    ) -> None:
        self._server = _HTTPServer((host, port), status, metrics, control, page or PageSettings())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 3600}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving: ask the loop to stop, wake its long poll with a connection, close."""
        if self._thread.is_alive():
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            wake_host = local_address(str(self._server.server_address[0]))
            with contextlib.suppress(OSError), socket.create_connection((wake_host, self.port), timeout=1):
                pass
            stopper.join(timeout=2)
        self._server.server_close()
