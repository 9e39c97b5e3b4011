"""Evaluation on load-profile splits, and the baselines every trained agent is compared with.

All policies go through the same code path: one environment, one episode per profile,
the policy's action each hour, the episode returns collected. Baselines:

* ``random``: uniform random actions (the action space seeded per profile);
* ``hold``: the reset settings all day (capacitors as the circuit has them, every
  regulator at tap 32, batteries idle);
* ``dss``: OpenDSS's own controllers (dss mode; batteries idle);
* ``best_fixed``: one setting all day (every regulator at the same tap number, capacitors
  all closed or all open, batteries idle, PV inverters at zero reactive power), the best of
  those 66 on the train split;
* ``unity``: ``_pv`` systems only: every PV inverter at zero reactive power (unity power
  factor) all day, the other devices as in ``best_fixed`` (its setting, chosen on the train
  split with the inverters at zero);
* ``voltvar`` (``_pv`` systems): every PV inverter on the IEEE 1547-2018 Category B volt-var
  curve (the steady state of each hour; ``pv_control="voltvar"``, see
  :mod:`vvc_batch.power_flow.voltvar`), the other devices as ``best_fixed`` chooses them
  (the best of the 66 fixed settings on the train split, inverters on the curve);
* ``oracle``: a perfect-information search that knows the day's loads
  (:mod:`vvc_batch.training.oracle`; a measured ceiling, not a policy).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

import vvc_batch
from vvc_batch.env.spaces import flat_action

BASELINES = ("random", "hold", "dss", "best_fixed", "unity", "voltvar", "oracle")
Policy = Callable[[np.ndarray], Any]


def split_profiles(num_profiles: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded half/half (train, test) split of the episode indices."""
    order = np.random.default_rng(seed).permutation(num_profiles).tolist()
    half = num_profiles // 2
    return sorted(order[:half]), sorted(order[half:])


def episode_return(env, policy: Policy | None, profile: int, seed: int = 0) -> float:
    """Return of one episode on ``profile``; ``policy`` maps an observation to an action
    (``None`` in dss mode). The reset and the environment's action space are seeded with
    ``seed``."""
    dss = env.unwrapped.dss_mode
    obs, _ = env.reset(seed=seed, options={"profile": int(profile)})
    env.action_space.seed(seed)
    total = 0.0
    while True:
        obs, r, term, trunc, _ = env.step(None if dss else policy(obs))
        total += r
        if term or trunc:
            return total


def episode_returns(env, policy: Policy | None, profiles: Sequence[int], seed: int = 0) -> list[float]:
    """Return of one episode per profile (see :func:`episode_return`), each seeded with
    seed + profile. ``env`` is a single environment (one episode after the other) or the
    vector environment (:func:`vector_episode_returns`: all at once, the same returns)."""
    if hasattr(env.unwrapped, "num_envs"):
        return vector_episode_returns(env, policy, profiles, seed)
    return [episode_return(env, policy, int(p), seed + int(p)) for p in profiles]


def vector_episode_returns(envs, policy: Policy | None, profiles: Sequence[int], seed: int = 0) -> list[float]:
    """:func:`episode_returns` on the vector environment (``autoreset_mode="Disabled"``): the
    profiles are played ``num_envs`` at a time in lockstep (a last partial batch padded
    with repeats whose returns are dropped), each environment reset with seed
    ``seed + profile``. ``policy`` is applied to one observation at a time, as in the
    single environment, so the returns are the single environment's, bit for bit (resets are
    history-free and an environment's results never depend on its neighbours)."""
    u = envs.unwrapped
    if u.metadata["autoreset_mode"].value != "Disabled":
        raise ValueError("vector evaluations need autoreset_mode='Disabled' (each day played once)")
    n, out = u.num_envs, []
    dss = u.dss_mode
    for start in range(0, len(profiles), n):
        chunk = [int(p) for p in profiles[start:start + n]]
        padded = chunk + [chunk[0]] * (n - len(chunk))
        obs, _ = envs.reset(seed=[seed + p for p in padded], options={"profile": padded})
        total = np.zeros(n)
        while True:
            actions = None if dss else np.stack([flat_action(policy(o)) for o in obs])
            obs, r, term, trunc, _ = envs.step(actions)
            total += r
            if (term | trunc).all():
                break
        out.extend(total[:len(chunk)].tolist())
    return out


def fixed_action(env, tap: int | None = None, caps: int | None = None) -> np.ndarray:
    """The flat action that holds settings: capacitors (the reset states, or all ``caps``),
    every regulator at ``tap`` (default: the reset tap), batteries idle, PV inverters (if
    any) at zero reactive power. float64 when the action has a continuous part (``_cbat``
    or ``_pv``), int64 otherwise."""
    core = env.unwrapped.core
    c = core.counts
    cap_part = [int(x) for x in core.reset_capacitors] if caps is None else [caps] * c.capacitors
    tap = core.config.system.regulator.reset_tap_number if tap is None else tap
    idle = [0.0] * c.batteries if core.config.continuous_battery else [c.bat_levels // 2] * c.batteries
    dtype = np.float64 if (core.config.continuous_battery or c.pv) else np.int64
    return np.array(cap_part + [tap] * c.regulators + idle + [0.0] * c.pv, dtype=dtype)


def check_unity_system(system: str, baseline: str = "unity") -> None:
    """Refuse a PV baseline (``unity``, ``voltvar``) on a system without controllable PV
    inverters.

    Raises:
        ValueError: ``system`` is not a ``_pv`` variant (the message lists the systems that
            have one).
    """
    from vvc_batch.systems.specs import parse_env_name, pv_system_names

    if not parse_env_name(system).pv_defs:
        have = ", ".join(f"{s}_pv" for s in pv_system_names()) or "none"
        what = "sets PV inverters to zero reactive power" if baseline == "unity" else "puts PV inverters on a curve"
        raise ValueError(f"the {baseline} baseline {what}; {system} has no controllable "
                         f"inverters (use a _pv variant: {have})")


def best_fixed_setting(env, train: Sequence[int], seed: int = 0) -> tuple[np.ndarray, float]:
    """(action, mean train return) of the best of the 66 fixed settings."""
    best, best_mean = None, -np.inf
    levels = env.unwrapped.core.counts.reg_levels
    for caps in (1, 0):
        for tap in range(levels):
            a = fixed_action(env, tap, caps)
            mean = float(np.mean(episode_returns(env, lambda obs, a=a: a, train, seed)))
            if mean > best_mean:
                best, best_mean = a, mean
    return best, best_mean


def evaluate_baseline(system: str, name: str, episodes: Sequence[int], train: Sequence[int] | None = None,
                      seed: int = 0, **env_kwargs: Any) -> list[float]:
    """Returns of baseline ``name``, one episode per profile index in ``episodes``
    (``best_fixed`` chooses its setting on ``train``, default ``episodes``); ``env_kwargs`` go
    to :func:`vvc_batch.make` (e.g. ``profiles="synthetic"``, the profile source).

    Raises:
        ValueError: an unknown baseline, or ``unity`` on a system without PV inverters.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid baselines: {', '.join(BASELINES)}")
    if name in ("unity", "voltvar"):
        check_unity_system(system, name)
    if name == "oracle":
        from vvc_batch.training.oracle import OracleBudget, oracle_returns

        budget = env_kwargs.pop("oracle_budget", None) or OracleBudget()
        env_kwargs.setdefault("backend", "batched")
        return oracle_returns(system, episodes, budget, **env_kwargs)
    if name == "voltvar":
        env_kwargs["pv_control"] = "voltvar"
    env = vvc_batch.make(system, dss_mode=(name == "dss"), **env_kwargs)
    try:
        if name == "dss":
            return episode_returns(env, None, episodes, seed)
        if name == "random":
            return episode_returns(env, lambda obs: env.action_space.sample(), episodes, seed)
        if name == "hold":
            a = fixed_action(env)
            return episode_returns(env, lambda obs: a, episodes, seed)
        # best_fixed, unity and voltvar: the best of the fixed settings (inverters at zero, or on the curve)
        a, _ = best_fixed_setting(env, train if train is not None else episodes, seed)
        return episode_returns(env, lambda obs: a, episodes, seed)
    finally:
        env.close()


def summary(returns: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "episodes", "returns"}`` of a list of episode returns."""
    r = [float(x) for x in returns]
    return {"mean": float(np.mean(r)), "std": float(np.std(r)), "episodes": len(r), "returns": r}

__all__ = [
    "BASELINES",
    "best_fixed_setting",
    "check_unity_system",
    "episode_return",
    "episode_returns",
    "evaluate_baseline",
    "fixed_action",
    "split_profiles",
    "summary",
    "vector_episode_returns",
]
