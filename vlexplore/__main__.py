"""``python -m vlexplore``: the command line (see :mod:`vlexplore.cli`)."""

import sys

from .cli import main

sys.exit(main())
