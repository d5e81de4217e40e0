"""``python -m latency_tui.tui`` is the ``latency-tui`` command."""

import sys

from .cli import main

sys.exit(main())
