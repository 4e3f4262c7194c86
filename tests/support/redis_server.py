"""A real redis-server on 127.0.0.1 for the shared-store tests: fresh directory, free port, AOF on.

Append-only persistence is on (``appendfsync always``) because the store's
promises across a Redis restart rely on it; the chaos test restarts the server
on the same port and directory.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, poll

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def available() -> bool:
    return Path(REDIS_SERVER).exists()


class RedisServer:
    def __init__(self, fsync: str = "always") -> None:
        self.fsync = fsync
        self.dir = Path(tempfile.mkdtemp(prefix="pbx-redis-"))
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        poll(lambda: self.command("PING") == "+PONG", 20, "redis-server to answer PING")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=20)
        self._proc = None

    def command(self, *words: str) -> str:
        """One inline command; the first line of the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall((" ".join(words) + "\r\n").encode())
            return conn.makefile("rb").readline().decode().strip()

    def kill_client(self, name: str) -> int:
        """``CLIENT KILL ID`` on every connection named ``name`` (CLIENT SETNAME); how many were cut."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(b"CLIENT LIST\r\n")
            reader = conn.makefile("rb")
            size = int(reader.readline()[1:])
            listing = reader.read(size + 2).decode()
        ids = [
            fields["id"]
            for fields in (
                dict(f.split("=", 1) for f in line.split() if "=" in f) for line in listing.splitlines()
            )
            if fields.get("name") == name
        ]
        for client_id in ids:
            self.command("CLIENT", "KILL", "ID", client_id)
        return len(ids)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(fsync: str = "always") -> Iterator[RedisServer]:
    server = RedisServer(fsync)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
