"""The operations HTTP server: /livez, /readyz, /metrics, /status and the HTML page.

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from proxbox_scheduler.ops.address import local_address
from proxbox_scheduler.ops.page import render
from proxbox_scheduler.telemetry.metrics import CONTENT_TYPE, Metrics
from proxbox_scheduler.telemetry.status import StatusStore

log = logging.getLogger("proxbox_scheduler.server")
MAX_CONNECTIONS = 32
"""Connections served at once; more are closed as soon as they are accepted."""
READ_TIMEOUT_SECONDS = 5.0
"""A client silent this long (unfinished headers, a stalled read) is disconnected."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "proxbox-scheduler"
    timeout = READ_TIMEOUT_SECONDS

    def do_HEAD(self) -> None:
        """Like GET without the body (load balancers and uptime checkers probe with HEAD)."""
        self._head_only = True
        self.do_GET()

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        status, metrics = self.server.status, self.server.metrics
        if path == "/livez":
            ok, detail = status.live()
            self._send(200 if ok else 503, "text/plain; charset=utf-8", detail.encode() + b"\n")
        elif path == "/readyz":
            ok, detail = status.ready()
            self._send(200 if ok else 503, "text/plain; charset=utf-8", detail.encode() + b"\n")
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE, metrics.render())
        elif path == "/status":
            self._status(parse_qs(query).get("job", [None])[0])
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", render(status.snapshot()).encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _status(self, job: str | None) -> None:
        """All of /status, or one job's entry with ``?job=NAME`` (404 for a name not configured)."""
        try:
            snapshot = self.server.status.snapshot(job)
        except KeyError:
            self._send(404, "text/plain; charset=utf-8", b"no such job\n")
            return
        self._send(200, "application/json", json.dumps(snapshot, indent=2).encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not getattr(self, "_head_only", False):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst waits in the kernel to be accepted (and closed if over the cap)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (a probe timing out) is not worth a traceback."""
        log.debug("ops request from %s failed", client_address, exc_info=True)

    def __init__(self, address: tuple[str, int], status: StatusStore, metrics: Metrics) -> None:
        self.status, self.metrics = status, metrics
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

    def __init__(self, host: str, port: int, status: StatusStore, metrics: Metrics) -> None:
        self._server = _HTTPServer((host, port), status, metrics)
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
