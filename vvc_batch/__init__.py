"""vvc_batch: fast, exact PowerGym Volt-Var control environments on OpenDSS.

>>> import vvc_batch
>>> env = vvc_batch.make("123Bus_soc_s1.5")          # gym.make("vvc_batch/123Bus_soc_s1.5-v0")
>>> obs, info = env.reset(seed=0, options={"profile": 5})
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
>>> envs = vvc_batch.make_vec("123Bus", num_envs=16)  # worker pool on shared memory

Subpackages: :mod:`vvc_batch.systems` (specs, data, profiles), :mod:`vvc_batch.env` (the
core, the gymnasium environment, spaces, reward, batteries, wrappers),
:mod:`vvc_batch.power_flow` (the backend interface, ``opendss`` and ``batched``),
:mod:`vvc_batch.vector` (the vector environment: pool, workers, lockstep, shared memory),
:mod:`vvc_batch.training` (runs, trainers, evaluation, oracle), :mod:`vvc_batch.cluster`
(Ray), :mod:`vvc_batch.viz` (render, plots) and :mod:`vvc_batch.bench` (the benchmark
tool). The modules here are the API (:mod:`.registration`), the errors and the command-line
tools (``python -m vvc_batch``, ``.train``, ``.evaluate``, ``.distributed``,
``.random_agent``, ``.data``).
"""

from vvc_batch.errors import (
    ClosedError,
    DataNotFoundError,
    EngineError,
    EpisodeEndedError,
    FetchError,
    InvalidActionError,
    MissingDependencyError,
    RayConnectionError,
    ResetNeededError,
    RewardFunctionError,
    SpecError,
    UnknownSystemError,
    UnsupportedElementError,
    UsageError,
    VVCError,
    WorkerDiedError,
    WorkerError,
)
from vvc_batch._moved import install_moved_module_aliases
from vvc_batch.registration import env_id, make, make_from_spec, make_vec, register, register_all
from vvc_batch.systems.specs import DATA_ENV_VAR, parse_env_name, system_names, valid_env_names

__version__ = "0.1.0"

__all__ = [
    "ClosedError",
    "DATA_ENV_VAR",
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
    "env_id",
    "make",
    "make_from_spec",
    "make_vec",
    "parse_env_name",
    "register",
    "register_all",
    "system_names",
    "valid_env_names",
]

register_all()
install_moved_module_aliases()
