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


class WorkerError(VVCError, RuntimeError):
    """A worker process of the vector environment raised an exception (its traceback is in the
    message) or died; the pool has been closed."""


class WorkerDiedError(WorkerError):
    """A worker process ended unexpectedly (killed, crashed, out of memory)."""


class RewardFunctionError(VVCError, RuntimeError):
    """A user's ``reward_fn`` raised or returned something other than one finite reward per
    environment. The environments of that step need a reset; the others go on.

    Attributes:
        env_ids: the environments (vector indices) whose step it failed on.
    """

    def __init__(self, message: str, env_ids: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.env_ids = tuple(int(i) for i in env_ids)

    def __reduce__(self):
        return type(self), (self.args[0], self.env_ids)


class FetchError(VVCError, RuntimeError):
    """A download failed: network or HTTP error, or a checksum mismatch."""


class RayConnectionError(VVCError, ConnectionError):
    """The Ray cluster named by an address cannot be reached (or the address is malformed)."""


class UsageError(VVCError, ValueError):
    """A command-line argument (or combination of them) that cannot work; raised by the
    ``python -m`` commands with a message that says what to give instead."""


class MissingDependencyError(VVCError, ImportError):
    """An optional dependency (one of vvc_batch's extras: torch and Stable-Baselines3, Ray
    RLlib, matplotlib) is not installed; the message names what to install."""


class UnsupportedElementError(VVCError, ValueError):
    """The circuit holds an element (or an element setting) that the batched power-flow
    backend does not model; raised when the environment is made, never mid-episode. The
    message names the element and what is not supported.

    Unless the message already says which backend to use, it ends by pointing to the
    ``opendss`` backend, which models every element OpenDSS does (``opendss_models=False``
    where OpenDSS itself cannot solve the setting).

    Attributes:
        element: the OpenDSS element name (``Class.name``), or ``""`` for a circuit setting.
    """

    def __init__(self, message: str, element: str = "", opendss_models: bool = True) -> None:
        if opendss_models and "backend=" not in message:
            message = f"{message}; make the environment with backend=\"opendss\", which models it"
        super().__init__(message)
        self.element = element

    def __reduce__(self):
        return type(self), (self.args[0], self.element, False)

__all__ = [
    "ClosedError",
    "DataNotFoundError",
    "EngineError",
    "EpisodeEndedError",
    "FetchError",
    "InvalidActionError",
    "MissingDependencyError",
    "RayConnectionError",
    "ResetNeededError",
    "RewardFunctionError",
    "SpecError",
    "UnknownSystemError",
    "UnsupportedElementError",
    "UsageError",
    "VVCError",
    "WorkerDiedError",
    "WorkerError",
]
