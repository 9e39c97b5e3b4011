"""Exception types raised by vvc_batch."""

from __future__ import annotations


class VVCError(Exception):
    """Base class of every error raised by vvc_batch."""


class UnknownSystemError(VVCError, ValueError):
    """An environment or system name that is not registered."""


class DataNotFoundError(VVCError, FileNotFoundError):
    """A circuit data directory or file that does not exist."""


class InvalidActionError(VVCError, ValueError):
    """An action of the wrong shape, dtype or range, or containing NaN."""


class EngineError(VVCError, RuntimeError):
    """OpenDSS reported an error other than a non-converged power flow."""


class EpisodeEndedError(VVCError, RuntimeError):
    """``step`` was called after the end of the episode without a ``reset``."""


class ResetNeededError(VVCError, RuntimeError):
    """``step`` was called before the first ``reset``."""


class ClosedError(VVCError, RuntimeError):
    """The environment (and its OpenDSS engine) was closed."""


class SpecError(VVCError, ValueError):
    """A feeder spec entry that is malformed or does not fit the circuit."""
