"""Issue 10, configuration: bad paths, URLs with query, fragment or port 0, --version, the README example."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxbox_scheduler import __version__
from tests.support.processes import CLI, base_env, run_cli

README = Path(__file__).resolve().parents[2] / "README.md"
LONG = "x" * 300


def one_config_line(done: object, variable: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)  # type: ignore[attr-defined]
    lines = done.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr  # type: ignore[attr-defined]
    assert lines[0].startswith(f"proxbox-scheduler: {variable}="), lines[0]
    return lines[0]


EXEC = {"PROXBOX_SCHEDULER_INVOKE": "exec", "PROXBOX_SCHEDULER_EXEC_CMD": "true"}


@pytest.mark.parametrize(
    ("variable", "extra"),
    [
        ("PROXBOX_API_KEY_FILE", {}),
        ("PROXBOX_API_CA_BUNDLE", {}),
        ("PROXBOX_SCHEDULER_EXEC_CWD", EXEC),
        ("PROXBOX_SCHEDULER_EXEC_CMD", {"PROXBOX_SCHEDULER_INVOKE": "exec"}),
    ],
)
def test_a_path_component_over_255_characters_is_exit_2_in_one_line(
    variable: str, extra: dict[str, str]
) -> None:
    value = f"/tmp/{LONG}/file"
    env = base_env(PROXBOX_MODE="interval=60", PROXBOX_API_URL="http://127.0.0.1:9", **extra)
    env[variable] = value
    one_config_line(run_cli(["check"], env), variable)


@pytest.fixture
def locked_dir() -> Iterator[Path]:
    """A directory its owner may not search, holding a key file and a CA bundle."""
    top = Path(tempfile.mkdtemp(prefix="harden-"))
    top.chmod(0o755)
    locked = top / "locked"
    locked.mkdir()
    (locked / "key").write_text("some-key\n")
    (locked / "ca.pem").write_text("not used\n")
    (locked / "bin").mkdir()
    locked.chmod(0)
    try:
        yield locked
    finally:
        locked.chmod(stat.S_IRWXU)
        for path in sorted(top.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        top.rmdir()


def _without_dac_override() -> list[str]:
    """As root, drop the capabilities that let root search any directory, so a mode-000 directory
    refuses it as it would refuse the container's non-root user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot provoke a permission error")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize(
    ("variable", "name", "extra"),
    [
        ("PROXBOX_API_KEY_FILE", "key", {}),
        ("PROXBOX_API_CA_BUNDLE", "ca.pem", {}),
        ("PROXBOX_SCHEDULER_EXEC_CWD", "bin", EXEC),
    ],
)
def test_a_file_in_an_unsearchable_directory_is_exit_2_in_one_line(
    locked_dir: Path, variable: str, name: str, extra: dict[str, str]
) -> None:
    env = base_env(PROXBOX_MODE="interval=60", PROXBOX_API_URL="http://127.0.0.1:9", **extra)
    env[variable] = str(locked_dir / name)
    done = subprocess.run(
        [*_without_dac_override(), CLI, "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    one_config_line(done, variable)


@pytest.mark.parametrize("url", ["http://h:8000/x?dry_run=true", "http://h:8000/x#frag", "http://h:8000/?"])
def test_an_api_url_with_query_or_fragment_is_refused_pointing_to_sync_params(url: str) -> None:
    line = one_config_line(
        run_cli(["check", "--mode", "interval=60", "--api-url", url], base_env()), "PROXBOX_API_URL"
    )
    assert "PROXBOX_SYNC_PARAMS" in line


def test_port_0_is_refused() -> None:
    done = run_cli(["check", "--mode", "interval=60", "--api-url", "http://h:0"], base_env())
    assert "1 to 65535" in one_config_line(done, "PROXBOX_API_URL")


@pytest.mark.parametrize("command", ["run", "once", "check", "healthcheck", "demo", "emulate-api"])
def test_version_works_on_every_command(command: str) -> None:
    done = run_cli([command, "--version"], base_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"proxbox-scheduler {__version__}"


def test_the_readme_check_example_is_what_the_tool_prints() -> None:
    block = README.read_text().split("```console\n$ proxbox-scheduler check", 1)[1].split("```", 1)[0]
    command, _, shown = block.partition("\n# ")
    argv = shlex.split("check" + command.replace("\\\n", " "))
    lines = ("# " + shown).strip().splitlines()
    notes, fires = [ln for ln in lines if ln.startswith("#")], [ln for ln in lines if not ln.startswith("#")]
    done = run_cli(argv, base_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == notes
    assert [re.sub(r"\s+", " ", line) for line in done.stdout.splitlines()] == [
        re.sub(r"\s+", " ", line) for line in fires
    ]
