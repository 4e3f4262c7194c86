"""proxbox-api's key check: the 401 countdown and the per (client address, key) 429 lockout."""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from proxbox_emulator.contract import LOCKED_BODY, key_invalid, key_required


@dataclass(frozen=True)
class Denial:
    """A refused request: the status, JSON body and extra headers to answer with."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Strikes:
    failures: int = 0
    locked_until: float = 0.0


class KeyCheck:
    """Allows the expected key (or anything when none is set) and locks out repeated wrong keys.

    A missing key never counts (the capture shows "5 attempts remaining" forever);
    a wrong key counts down and the attempt after the last allowed one gets 429
    with ``retry-after``. An expired lockout starts the countdown afresh.
    """

    def __init__(self, expected: str | None, lockout_after: int, lockout_seconds: float) -> None:
        self._expected = expected
        self._limit = lockout_after
        self._lockout = lockout_seconds
        self._lock = threading.Lock()
        self._strikes: dict[tuple[str, str], _Strikes] = {}

    def check(self, client: str, key: str | None) -> Denial | None:
        """None when the request may proceed, else how to refuse it."""
        if self._expected is None:
            return None
        if key is None:
            return Denial(401, key_required(self._limit))
        now = time.monotonic()
        with self._lock:
            strikes = self._strikes.get((client, key))
            if strikes is not None and strikes.locked_until:
                if now < strikes.locked_until:
                    retry = str(max(1, math.ceil(strikes.locked_until - now)))
                    return Denial(429, dict(LOCKED_BODY), {"retry-after": retry})
                del self._strikes[(client, key)]
            if hmac.compare_digest(key.encode(), self._expected.encode()):
                return None
            strikes = self._strikes.setdefault((client, key), _Strikes())
            strikes.failures += 1
            remaining = self._limit - strikes.failures
            if remaining <= 0:
                strikes.locked_until = now + self._lockout
        return Denial(401, key_invalid(remaining))
