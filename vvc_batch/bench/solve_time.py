"""The time the power-flow solver itself takes within a benchmark's steps (OpenDSS's solve of
one engine, or the batched solver's call), to set the engine's overhead against."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def _solver_of(core: Any) -> tuple[Any, str]:
    """(object, attribute) of the call that solves the power flow in ``core``'s backend:
    OpenDSS's solve of the first engine, or the batched solver's unchecked solve (which the
    backend calls)."""
    if core.backend_name == "batched":
        return core.backend.solver, "solve_unchecked"
    return core.engines[0], "solve"


def _flat_row(core: Any, action: Any) -> np.ndarray:
    return core.checker.check(action)[0]


def solve_seconds(env: Any, actions: list) -> float:
    """Mean seconds per step spent in the power-flow solve while ``env`` (unwrapped, one
    environment) plays ``actions``: the bare solve of exactly these steps."""
    core = env.core
    return core_solve_seconds(core, [np.asarray([_flat_row(core, a)]) if a is not None else None for a in actions],
                              env_steps=1)


def core_solve_seconds(core: Any, batches: list, env_steps: int) -> float:
    """Mean seconds per env-step spent in the backend's solver while ``core`` (all of its
    environments) plays ``batches`` ((K, A) rows, or None in dss mode), resets included."""
    target, attr = _solver_of(core)
    solve = getattr(target, attr)
    spent = [0.0]

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return solve(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    rng = np.random.default_rng(0)
    core.reset(None, None, [rng] * core.num_envs)
    setattr(target, attr, timed)
    try:
        for a in batches:
            buf = core.step(a)
            if buf.truncated.any():
                # its solve counts too, as resets count in the step rates
                core.reset(np.flatnonzero(buf.truncated), None, [rng] * int(buf.truncated.sum()))
    finally:
        delattr(target, attr)
    return spent[0] / (len(batches) * env_steps)


def bare_solve_us(system: str, actions: list[np.ndarray], dss: bool, env_kwargs: dict[str, Any],
                  num_envs: int = 1) -> float:
    """Microseconds of power-flow solve per env-step for the benchmark's actions, with
    ``num_envs`` environments in one process (one worker's share)."""
    from vvc_batch.env.core import VVCBatch
    from vvc_batch.registration import env_config
    from vvc_batch.power_flow.interface import SolverSettings

    kwargs = dict(env_kwargs)
    solver = SolverSettings.of(kwargs.pop("solver", None), solver_options=kwargs.pop("solver_options", 0))
    core = VVCBatch(env_config(system), num_envs, dss_mode=dss, solver=solver, **kwargs)
    checker = core.checker
    width = actions[0].shape[0]
    batches = []
    for a in actions:  # every action row once, num_envs at a time
        for k in range(0, width - num_envs + 1, num_envs):
            batches.append(None if dss else checker.check(a[k:k + num_envs], batch=num_envs))
    try:
        return core_solve_seconds(core, batches, num_envs) * 1e6
    finally:
        core.close()


__all__ = ["bare_solve_us", "core_solve_seconds", "solve_seconds"]
