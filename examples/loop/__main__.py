"""``python -m examples.loop``: see examples/loop/run.py."""

import sys

from examples.loop.run import main

sys.exit(main())
