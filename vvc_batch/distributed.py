"""``python -m vvc_batch.distributed``: Evaluation sweeps on a Ray cluster (the command of
:mod:`vvc_batch.cluster.distributed`, whose docstring lists its options)."""

import sys

from vvc_batch.cluster.distributed import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
