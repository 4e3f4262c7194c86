"""`python -m proxbox_scheduler` is the same as the console script."""

import sys

from proxbox_scheduler.cli import main

sys.exit(main())
