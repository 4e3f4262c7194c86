"""`once` on a terminal draws a progress bar and a summary; on a pipe it logs JSON lines."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import subprocess
import threading
from collections.abc import Iterator

import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.processes import CLI, base_env, parse_json, run_cli

KEY = "tty-test-key-0a1b2c3d4e"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    # one stage slow enough that the bar (10 refreshes/s) surely draws it
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.01, slow_stages={"virtual-machines": 0.4}))
    emu.start()
    yield emu
    emu.stop()


def env_for(url: str) -> dict[str, str]:
    return base_env(
        PROXBOX_MODE="interval=60",
        PROXBOX_API_URL=url,
        PROXBOX_API_KEY=KEY,
        TERM="xterm",
        COLUMNS="120",
        LINES="40",
    )


def run_on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 20.0) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the last slave descriptor is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    try:
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        with contextlib.suppress(OSError):
            os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def plain(text: str) -> str:
    return ANSI.sub("", text)


def test_once_on_a_terminal_shows_stages_and_a_summary(emulator: Emulator) -> None:
    code, raw = run_on_a_terminal([CLI, "once"], env_for(emulator.url))
    text = plain(raw)
    assert code == 0, text
    assert "\x1b[" in raw, "a live bar draws with escape sequences"
    assert "stage virtual-machines" in text
    assert "sync succeeded" in text
    summary = next(line for line in text.splitlines() if "sync succeeded" in line)
    assert "devices 1" in summary and "virtual_machines 2" in summary
    assert '"event"' not in text, "INFO log lines give way to the bar on a terminal"
    assert KEY not in raw


def test_once_on_a_terminal_reports_a_failure() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, fail_every=1)).start()
    try:
        code, raw = run_on_a_terminal([CLI, "once"], env_for(emu.url))
    finally:
        emu.stop()
    text = plain(raw)
    assert code == 1, text
    assert "sync failed" in text
    assert "run failed:" in text


def test_once_on_a_pipe_logs_json_lines_without_a_bar(emulator: Emulator) -> None:
    done = run_cli(["once"], env_for(emulator.url))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    docs = [parse_json(line) for line in lines]
    assert lines and all(docs), done.stdout
    events = [doc["event"] for doc in docs if doc]
    assert "run finished" in events
    assert any(e.startswith("stage virtual-machines started") for e in events)
