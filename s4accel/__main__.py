"""``python -m s4accel``: the ``s4`` command line."""

import sys

from .cli import main

sys.exit(main())
