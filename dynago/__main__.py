"""``python -m dynago`` does what the ``dynago`` command does."""

import sys

from dynago.cli import main

sys.exit(main())
