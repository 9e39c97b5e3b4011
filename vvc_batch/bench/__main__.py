"""``python -m vvc_batch.bench``: see :mod:`vvc_batch.bench.cli`."""

import sys

from vvc_batch.bench.cli import main

sys.exit(main())
