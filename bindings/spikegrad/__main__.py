"""`python -m spikegrad ...`: the `spikegrad` command line."""

import sys

from .tools.cli import main

sys.exit(main())
