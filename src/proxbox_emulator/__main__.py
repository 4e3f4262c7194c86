"""``python -m proxbox_emulator``: the same command line as ``proxbox-emulator``."""

import sys

from proxbox_emulator.cli import main

sys.exit(main(prog="python -m proxbox_emulator"))
