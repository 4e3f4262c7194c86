"""A small reverse proxy in front of NetBox, so tests can make NetBox fail or slow down.

proxbox-api reaches NetBox only through it. Faults are read from a JSON file
(written by ``python -m tests.e2e.stack fault ...``) whenever it changes:
``{"delay_ms": N, "status": 503, "method": "*", "path": "<regex>", "times": N|null}``.
Standalone (stdlib only) so it runs under any Python 3.

Usage: python proxy.py LISTEN_PORT UPSTREAM_PORT FAULT_FILE
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
}


class Faults:
    """The current fault rule, reloaded on change; ``times`` counts down in memory."""

    def __init__(self, path: Path) -> None:
        self.path, self.mtime, self.rule = path, None, {}
        self.lock = threading.Lock()

    def current(self) -> dict[str, Any]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        with self.lock:
            if mtime != self.mtime:
                self.mtime = mtime
                self.rule = json.loads(self.path.read_text()) if mtime is not None else {}
            return dict(self.rule)

    def should_fail(self, method: str, path: str) -> int | None:
        """The status to answer instead of forwarding, or None."""
        rule = self.current()
        status = rule.get("status")
        if not status or rule.get("method", "*") not in ("*", method):
            return None
        if not re.search(rule.get("path") or "", path):
            return None
        with self.lock:
            times = self.rule.get("times")
            if times is not None:
                if times <= 0:
                    return None
                self.rule["times"] = times - 1
        return int(status)


def handler(upstream: int, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write(f"{self.log_date_time_string()} {fmt % args}\n")

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            delay = faults.current().get("delay_ms") or 0
            if delay:
                time.sleep(delay / 1000)  # the fault itself: NetBox answering slowly
            status = faults.should_fail(self.command, self.path)
            if status is not None:
                self._answer(
                    status,
                    [("Content-Type", "application/json")],
                    json.dumps({"detail": f"e2e fault: NetBox answers {status}"}).encode(),
                )
                return
            try:
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                kept = [(k, v) for k, v in reply.getheaders() if k.lower() not in HOP]
                self._answer(reply.status, kept, data)
                conn.close()
            except OSError as exc:
                self._answer(502, [("Content-Type", "text/plain")], f"upstream: {exc}".encode())

        def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay

    return Proxy


def main(argv: list[str]) -> int:
    listen, upstream, fault_file = int(argv[0]), int(argv[1]), Path(argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", listen), handler(upstream, Faults(fault_file)))
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
