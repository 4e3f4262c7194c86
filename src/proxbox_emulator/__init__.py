"""A proxbox-api emulator that speaks the real service's wire contract.

Why it exists: users point a deployment at it to try their setup without a
Proxmox cluster or a NetBox; the test suite drives it to produce every stream
shape the scheduler must cope with (success, failure, cut, degraded, slow,
huge); the demo and the benchmarks use it as a fast, controllable peer.

What it follows: ``shared/spec/proxbox-api.md`` and the captured traffic in
``shared/samples/`` (proxbox-api 0.0.30.post2), copied into ``contract``. It
imports nothing from proxbox_scheduler, the code it is meant to check.

Modules, along a request: ``settings`` (every knob, declared once) ->
``server`` (HTTP server, handler, Emulator) -> ``auth`` (key check, lockout) ->
``ledger`` (requests and runs seen) -> ``script`` (one run) -> ``stages`` and
``frames`` (the frames per stage) -> ``sse`` (chunks, keep-alives), with
``inventory`` (the synthetic cluster) and ``cli`` beside them.
"""

from proxbox_emulator.inventory import Inventory, journal_padding
from proxbox_emulator.ledger import Outcome, RequestRecord, RunRecord
from proxbox_emulator.server import Emulator
from proxbox_emulator.settings import EmulatorSettings, SettingError

__all__ = [
    "Emulator",
    "EmulatorSettings",
    "Inventory",
    "Outcome",
    "RequestRecord",
    "RunRecord",
    "SettingError",
    "journal_padding",
]
