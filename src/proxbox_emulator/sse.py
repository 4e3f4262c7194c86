"""The SSE side of one run: frames buffered into HTTP/1.1 chunks, keep-alives, a gone peer noticed."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import time
from typing import Any, BinaryIO

FLUSH_BYTES = 64 * 1024  # frames are buffered up to this much before a chunk goes out
KEEPALIVE = b": keepalive\n\n"


class ClientGone(Exception):
    """The peer closed the connection (or the emulator cut it) while a run was going."""


def await_peer(selector: selectors.BaseSelector, sock: socket.socket, timeout: float) -> None:
    """Wait ``timeout`` seconds but raise ClientGone as soon as the peer closes.

    An idle SSE connection only becomes readable when the client hangs up (or the
    emulator shuts the socket down on stop), so readability plus an empty peek is
    the disconnect signal; without it a slow stage would not notice a gone client.
    """
    if timeout <= 0:
        return
    if not selector.select(timeout):
        return
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except OSError as exc:
        raise ClientGone from exc
    if not data:
        raise ClientGone
    # The client sent bytes mid-response (a pipelined request): nothing to learn here.
    time.sleep(timeout)


def frame(name: str, data: dict[str, Any]) -> str:
    """One SSE event; json.dumps defaults (", " and ": " separators, ASCII) are what proxbox-api emits."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class SseWriter:
    """SSE output of one run: buffers frames, sends them as HTTP/1.1 chunks, keeps alive."""

    def __init__(self, sock: socket.socket, wfile: BinaryIO, keepalive: float, *, chunked: bool) -> None:
        self._sock = sock
        self._wfile = wfile
        self._keepalive = keepalive
        self._chunked = chunked
        self._parts: list[str] = []
        self._size = 0
        self._last_sent = time.monotonic()
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)

    def event(self, name: str, data: dict[str, Any]) -> None:
        text = frame(name, data)
        self._parts.append(text)
        self._size += len(text)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            payload = "".join(self._parts).encode()
            self._parts.clear()
            self._size = 0
            self.send(payload)

    def send(self, payload: bytes) -> None:
        """Send bytes as one chunk (the caller flushed buffered frames first)."""
        if not self._chunked:
            self._wfile.write(payload)
        elif len(payload) < FLUSH_BYTES:
            self._wfile.write(b"%x\r\n%b\r\n" % (len(payload), payload))
        else:  # avoid copying multi-MiB payloads just to frame them
            self._wfile.write(b"%x\r\n" % len(payload))
            self._wfile.write(payload)
            self._wfile.write(b"\r\n")
        self._last_sent = time.monotonic()

    def pause(self, seconds: float) -> None:
        """Idle like a slow stage: keep-alive comments when quiet, notice a gone client."""
        self.flush()
        deadline = time.monotonic() + seconds
        while (now := time.monotonic()) < deadline:
            due = self._last_sent + self._keepalive
            if now >= due:
                self.send(KEEPALIVE)
            else:
                await_peer(self._selector, self._sock, min(deadline, due) - now)

    def finish(self) -> None:
        self.flush()
        if self._chunked:
            self._wfile.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drop the connection mid-body, like a killed server or a proxy timeout."""
        self.flush()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._selector.close()
