"""A tiny, fast stand-in for proxbox-api, run as its own process by the benchmarks.

It answers ``GET /sync/active`` with ``{"active": false}`` and
``GET /full-update/stream`` with one of:

* the default: a few bootstrap events and ``complete`` (ok), at once (timing runs);
* ``--stream FILE``: a pre-generated body sent with ``sendfile`` and a
  Content-Length, so the server costs next to nothing and is never the bottleneck;
* ``--hold``: a first event, then a keepalive comment every ``--keepalive``
  seconds until the client goes away (or ``complete`` after ``--complete-after``).

Every request, finished body and closed connection is reported as one JSON line
on stdout with its ``time.monotonic()`` stamp (CLOCK_MONOTONIC is shared by all
processes on Linux, so the benchmark can compare it with its own clock).
Connections are kept alive like uvicorn's, so httpx may send both requests on one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import sys
import threading
import time
from typing import Any

ACTIVE_BODY = b'{"active": false, "id": null}'
QUICK_BODY = (
    b'event: bootstrap_done\ndata: {"step": "bootstrap", "status": "completed"}\n\n'
    b'event: step\ndata: {"step": "stream", "status": "started", "message": "operation_id=bench"}\n\n'
    b'event: complete\ndata: {"ok": true, "message": "Full update sync completed.", '
    b'"result": {"devices_count": 1}}\n\n'
)
HOLD_FIRST = b'event: step\ndata: {"step": "stream", "status": "started", "message": "operation_id=hold"}\n\n'
HOLD_COMPLETE = b'event: complete\ndata: {"ok": true, "message": "Full update sync completed."}\n\n'
SSE_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"

_out_lock = threading.Lock()


def report(ev: str, **fields: Any) -> None:
    """One JSON line on stdout, stamped with the monotonic clock (unless ``t`` is given)."""
    fields.setdefault("t", time.monotonic())
    line = json.dumps({"ev": ev, **fields}) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


class Server:
    """Accepts connections and serves each on its own thread."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sock = socket.create_server(("127.0.0.1", args.port), backlog=128)
        self.stream_size = os.path.getsize(args.stream) if args.stream else 0
        self.conn_ids = 0

    def serve(self) -> None:
        report("listening", port=self.sock.getsockname()[1], pid=os.getpid())
        while True:
            conn, _ = self.sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn_ids += 1
            threading.Thread(target=self.handle, args=(conn, self.conn_ids), daemon=True).start()

    def handle(self, conn: socket.socket, cid: int) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        report("closed", conn=cid)
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                t = time.monotonic()
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                path = target.split("?", 1)[0]
                report("request", conn=cid, path=path, t=t)
                if not self.respond(conn, cid, path):
                    return
        except OSError as exc:
            report("closed", conn=cid, error=type(exc).__name__)
        finally:
            conn.close()

    def respond(self, conn: socket.socket, cid: int, path: str) -> bool:
        """Answer one request; False when the connection is finished."""
        if path == "/sync/active":
            conn.sendall(_fixed(200, "application/json", ACTIVE_BODY))
            return True
        if path != "/full-update/stream":
            conn.sendall(_fixed(404, "application/json", b'{"detail": "Not Found"}'))
            return True
        if self.args.hold:
            self.hold(conn, cid)
            return False
        if self.args.stream:
            conn.sendall(f"{SSE_HEAD}Content-Length: {self.stream_size}\r\n\r\n".encode())
            with open(self.args.stream, "rb") as body:
                sent = conn.sendfile(body)
        else:
            conn.sendall(f"{SSE_HEAD}Content-Length: {len(QUICK_BODY)}\r\n\r\n".encode() + QUICK_BODY)
            sent = len(QUICK_BODY)
        report("sent", conn=cid, bytes=sent)
        return True

    def hold(self, conn: socket.socket, cid: int) -> None:
        """Keep the stream open until the client leaves (or complete after a while)."""
        start = time.monotonic()
        conn.sendall(f"{SSE_HEAD}Connection: close\r\n\r\n".encode() + HOLD_FIRST)
        after = self.args.complete_after
        finished = False
        while True:
            wait: float | None = self.args.keepalive
            if finished:
                wait = None  # the body is over: only wait for the client to close
            elif after is not None:
                wait = max(0.0, min(self.args.keepalive, start + after - time.monotonic()))
            readable, _, _ = select.select([conn], [], [], wait)
            if readable:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    report("closed", conn=cid, held=time.monotonic() - start)
                    return
            elif after is not None and time.monotonic() >= start + after:
                conn.sendall(HOLD_COMPLETE)
                report("sent", conn=cid, bytes=len(HOLD_FIRST) + len(HOLD_COMPLETE))
                conn.shutdown(socket.SHUT_WR)
                finished = True
            else:
                conn.sendall(b": keepalive\n\n")


def _fixed(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--stream", help="serve this file as the stream body")
    parser.add_argument("--hold", action="store_true", help="hold the stream open with keepalives")
    parser.add_argument("--keepalive", type=float, default=0.5, help="seconds between keepalives (hold)")
    parser.add_argument("--complete-after", type=float, help="hold: send complete after this many seconds")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        Server(args).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
