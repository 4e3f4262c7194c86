"""A real scheduler (the CLI as a subprocess) against the emulator, ops port and control on.

Shared by the control, OpenAPI and browser tests: they all need the same
running process and differ only in what they do with its ops port.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from proxbox_emulator import Emulator
from tests.support.http import Reply, http_get
from tests.support.processes import CLI, Proc, base_env, free_port, poll, running

KEY = "console-test-key-0123456789"
TOKEN = "console-token-0123456789abcdef"


@dataclass
class Console:
    proc: Proc
    url: str

    def get(self, path: str) -> Reply:
        return http_get(self.url + path)

    def post(self, path: str, token: str | None = TOKEN) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        request = urllib.request.Request(self.url + path, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return Reply(answer.status, dict(answer.headers), answer.read(), 0.0)
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, dict(exc.headers), exc.read(), 0.0)

    def runs(self) -> list[dict]:
        return self.get("/status").json()["jobs"][0]["runs"]


def token_file(directory: Path, token: str = TOKEN) -> Path:
    path = directory / "control-token"
    path.write_text(token + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def console(emu: Emulator, token_path: Path | None, **variables: str) -> Iterator[Console]:
    """The scheduler up and scheduling (``/readyz`` 200), stopped on the way out."""
    port = free_port()
    env = base_env(
        PROXBOX_MODE="interval=3600",
        PROXBOX_API_URL=emu.url,
        PROXBOX_API_KEY=KEY,
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
        PROXBOX_SCHEDULER_HTTP_PORT=str(port),
    )
    if token_path is not None:
        env["PROXBOX_SCHEDULER_CONTROL_TOKEN_FILE"] = str(token_path)
    env.update(variables)
    url = f"http://127.0.0.1:{port}"
    with running([CLI, "run"], env) as proc:
        poll(lambda: http_get(url + "/readyz", timeout=1).status == 200, 15, "the scheduler to be ready")
        yield Console(proc, url)
