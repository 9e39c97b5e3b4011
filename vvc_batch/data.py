"""``python -m vvc_batch.data``: Get PowerGym's circuit data onto this machine, verified (the command of
:mod:`vvc_batch.systems.fetch`, whose docstring lists its options)."""

import sys

from vvc_batch.systems.fetch import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
