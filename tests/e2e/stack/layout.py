"""Where the stack keeps its files: venvs and the migrated template are cached, the rest is per-stack."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PINS = Path(__file__).resolve().parent / "pins"
HOST = "127.0.0.1"


def cache_dir() -> Path:
    """PROXBOX_E2E_CACHE when set (CI keeps it across clones), else the repo's git-ignored cache."""
    configured = os.environ.get("PROXBOX_E2E_CACHE", "").strip()
    return Path(configured) if configured else REPO / ".cache" / "e2e"


@dataclass(frozen=True)
class Layout:
    """Paths under one cache directory."""

    cache: Path

    @property
    def venvs(self) -> Path:
        return self.cache / "venvs"

    @property
    def templates(self) -> Path:
        return self.cache / "templates"

    @property
    def stack(self) -> Path:
        return self.cache / "stack"

    @property
    def logs(self) -> Path:
        return self.stack / "logs"

    @property
    def run(self) -> Path:
        return self.stack / "run"

    @property
    def pg_data(self) -> Path:
        return self.stack / "pg" / "data"

    @property
    def netbox_root(self) -> Path:
        return self.stack / "netbox"

    @property
    def api_state(self) -> Path:
        return self.stack / "proxbox-api"

    @property
    def mock_state(self) -> Path:
        return self.api_state / "proxmox-mock.sqlite3"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def layout() -> Layout:
    return Layout(cache_dir())
