"""The import direction of the package: every module imports only from its own layer or below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "proxbox_scheduler"
LAYERS = {
    "redact": 0,
    "signals": 0,
    "transport": 0,
    "core": 2,
    "state": 1,
    "proxbox": 2,
    "telemetry": 2,
    "parsers": 2,
    "netbox": 2,
    "jobs": 2,
    "crosscheck": 2,
    "variables": 3,
    "jobfile": 3,
    "config": 4,
    "triggers": 5,
    "ops": 5,
    "service": 6,
    "demo": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 0,
}
"""Layer of each top-level module or package; an import may only point to a lower or equal layer."""


def layer_of(dotted: str) -> int | None:
    parts = dotted.split(".")
    if parts[0] != "proxbox_scheduler":
        return None
    return LAYERS[parts[1]] if len(parts) > 1 else 0


def imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    own = LAYERS[path.relative_to(SRC).parts[0].removesuffix(".py")]
    upward = [name for name in imports(path) if (layer_of(name) or 0) > own]
    assert not upward, f"{path.relative_to(SRC)} imports from a higher layer: {upward}"


def test_every_module_has_a_layer() -> None:
    tops = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in MODULES}
    assert tops <= set(LAYERS)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The scan must flag an upward import, or the tests above prove nothing."""
    probe = tmp_path / "probe.py"
    probe.write_text("from proxbox_scheduler.service import Service\n")
    assert [n for n in imports(probe) if (layer_of(n) or 0) > LAYERS["core"]] == ["proxbox_scheduler.service"]
