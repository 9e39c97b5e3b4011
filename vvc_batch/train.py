"""``python -m vvc_batch.train``: Train PPO or SAC (Stable-Baselines3), or PPO with Ray RLlib, on the vector environment (the command of
:mod:`vvc_batch.training.train`, whose docstring lists its options)."""

import sys

from vvc_batch.training.train import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
