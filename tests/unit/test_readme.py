"""The README's environment table is the configuration table: same names, order, defaults, docs."""

from __future__ import annotations

import re
from pathlib import Path

from proxbox_scheduler.config import VARIABLES

README = Path(__file__).resolve().parents[2] / "README.md"


def _table_rows() -> list[tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- env-table", 1)[1].split("<!-- /env-table -->", 1)[0]
    rows = []
    for line in table.splitlines():
        match = re.match(r"^\| `(PROXBOX_[A-Z_]+)` \| (.*?) \| (.*) \|$", line)
        if match:
            rows.append(match.groups())
    return rows


def test_env_table_lists_every_variable_in_order() -> None:
    assert [name for name, _, _ in _table_rows()] == [v.name for v in VARIABLES]


def test_env_table_defaults_and_meanings_are_the_codes() -> None:
    for (name, default, doc), var in zip(_table_rows(), VARIABLES, strict=True):
        expected_default = f"`{var.default}`" if var.default else "(empty)"
        assert default == expected_default, name
        assert doc == var.doc, name
