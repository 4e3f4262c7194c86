"""Python 3.12 venvs for NetBox and for proxbox-api, cached under a key of the pin files.

A change to a requirements or constraints file (or to the interpreter) gives a
new key, hence a new venv; an old one is left for `make clean`-style removal.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import PINS, Layout

VENVS = {"netbox": "netbox", "api": "proxbox-api"}


def find_python312() -> Path:
    """The interpreter for both venvs: E2E_PYTHON, else pyenv's 3.12, else python3.12 on PATH."""
    configured = os.environ.get("E2E_PYTHON", "").strip()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [Path(configured)] if configured else []
    candidates += sorted(pyenv.glob("3.12*/bin/python3"))
    on_path = shutil.which("python3.12")
    candidates += [Path(on_path)] if on_path else []
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    raise StackError("python3.12", f"no Python 3.12 found (set E2E_PYTHON; looked in {pyenv})")


def pin_files(name: str) -> tuple[Path, Path]:
    return PINS / f"{name}-requirements.txt", PINS / f"{name}-constraints.txt"


def venv_key(name: str, python: Path) -> str:
    """A hash of the pins and the interpreter's version: the cache key of a venv."""
    digest = hashlib.sha256()
    for path in pin_files(name):
        digest.update(path.read_bytes())
    version = subprocess.run([python, "-VV"], capture_output=True, text=True, check=True).stdout
    digest.update(version.encode())
    return digest.hexdigest()[:16]


def ensure_venv(lay: Layout, name: str) -> Path:
    """The venv for ``name`` (netbox or api), built when its key is not cached yet."""
    python = find_python312()
    target = lay.venvs / f"{name}-{venv_key(name, python)}"
    stamp = target / ".complete"
    if stamp.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    lay.logs.mkdir(parents=True, exist_ok=True)
    log = lay.log(f"pip-{name}")
    requirements, constraints = pin_files(name)
    steps = [
        [str(python), "-m", "venv", str(target)],
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
            "-c",
            str(constraints),
        ],
    ]
    with log.open("w") as out:
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise StackError(f"venv {VENVS[name]}", "pip install failed", log)
    stamp.touch()
    return target
