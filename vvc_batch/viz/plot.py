"""Figures of an environment: an episode as a GIF, a day's profile, the feeder's layout.

    from vvc_batch.viz import plot
    traj = plot.episode_gif(env, "random", "episode.gif", profile=3)   # also returns the trajectory
    plot.daily_profile(traj).savefig("day.png")
    plot.feeder_map(env).savefig("layout.png")

Matplotlib draws (Agg, no window); Pillow writes the GIF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vvc_batch.viz.render import V_HIGH, V_LOW, FeederRenderer, env_frame


def _unwrapped(env):
    return getattr(env, "unwrapped", env)


def run_episode(env, policy_or_actions: Any = "random", profile: Any = None, seed: int = 0,
                on_step: Callable[[np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Play one episode and record it.

    Args:
        policy_or_actions: ``"random"`` (seeded samples of the action space), a callable
            ``obs -> action``, or a sequence of actions (one per hour); ignored in dss mode.
        on_step: called after the reset and after every step (e.g. to render).

    Returns:
        the trajectory: ``v`` (hours+1, nodes) pu, ``caps``, ``taps``, ``soc``, ``power``
        (per battery, normalized), ``reward`` and ``hour``, for the reset and every hour.
    """
    u = _unwrapped(env)
    core = u.core
    N, C, R = core.num_nodes, core.counts.capacitors, core.counts.regulators
    obs, _ = u.reset(seed=seed, options=None if profile is None else {"profile": profile})
    u.action_space.seed(seed)
    rows, rewards = [obs.copy()], [0.0]
    if on_step:
        on_step(None)
    for t in range(core.horizon):
        if u.dss_mode:
            action = None
        elif isinstance(policy_or_actions, str):
            if policy_or_actions != "random":
                raise ValueError(f"policy must be 'random', a callable or a list of actions, got {policy_or_actions!r}")
            action = u.action_space.sample()
        elif callable(policy_or_actions):
            action = policy_or_actions(obs)
        else:
            action = policy_or_actions[t]
        obs, r, term, trunc, _ = u.step(action)
        rows.append(obs.copy())
        rewards.append(r)
        if on_step:
            on_step(action)
        if term or trunc:
            break
    m = np.array(rows)
    return {
        "v": m[:, :N], "caps": m[:, N:N + C], "taps": m[:, N + C:N + C + R],
        "soc": m[:, N + C + R::2], "power": m[:, N + C + R + 1::2],
        "reward": np.array(rewards), "hour": np.arange(len(rows)),
        "bus_start": core.circuit_names.bus_start, "names": {"caps": u.cap_names, "regs": u.reg_names, "bats": u.bat_names},
    }


def episode_gif(env, policy_or_actions: Any, path: str | Path, profile: Any = None, seed: int = 0,
                node_bound: str = "minimum", fps: int = 4, frames_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Write a GIF of one episode, one frame per step, to ``path``; with ``frames_dir`` also
    each frame as PNG. Returns the trajectory (see :func:`run_episode`)."""
    from PIL import Image

    u = _unwrapped(env)
    renderer = FeederRenderer(u.core, node_bound)
    frames: list[np.ndarray] = []
    try:
        traj = run_episode(u, policy_or_actions, profile, seed,
                           on_step=lambda a: None if a is None and u.core.t[0] == 0
                           else frames.append(env_frame(u, renderer, a)))
    finally:
        renderer.close()
    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    if frames_dir is not None:
        out = Path(frames_dir)
        out.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(images):
            im.save(out / f"frame_{i:03d}.png")
    return traj


def daily_profile(trajectory: dict[str, np.ndarray]):
    """A figure of one day: the band of node voltages with the 0.95/1.05 pu limits, tap
    numbers, capacitor states, battery state of charge and power."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    h = trajectory["hour"]
    v = trajectory["v"]
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    ax = axes[0]
    ax.fill_between(h, v.min(axis=1), v.max(axis=1), color="tab:blue", alpha=0.3, label="node voltages")
    ax.plot(h, np.median(v, axis=1), color="tab:blue", label="median")
    ax.axhline(V_LOW, color="k", ls="--", lw=0.8)
    ax.axhline(V_HIGH, color="k", ls="--", lw=0.8)
    ax.set_ylabel("voltage (pu)")
    ax.legend(fontsize=7)
    names = trajectory.get("names", {})
    for j in range(trajectory["taps"].shape[1]):
        axes[1].step(h, trajectory["taps"][:, j], where="post", label=(names.get("regs") or [None] * 99)[j])
    axes[1].set_ylabel("tap number")
    for j in range(trajectory["caps"].shape[1]):
        axes[2].step(h, trajectory["caps"][:, j] + 0.02 * j, where="post", label=(names.get("caps") or [None] * 99)[j])
    axes[2].set_ylabel("capacitor on")
    for j in range(trajectory["soc"].shape[1]):
        axes[3].plot(h, trajectory["soc"][:, j], label=f"soc {(names.get('bats') or [j] * 99)[j]}")
        axes[3].step(h, trajectory["power"][:, j], where="post", ls=":", label=f"power {(names.get('bats') or [j] * 99)[j]}")
    axes[3].set_ylabel("soc / power")
    axes[3].set_xlabel("hour")
    for a in axes[1:]:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=6, ncol=4)
    fig.tight_layout()
    return fig


def feeder_map(env, node_bound: str = "minimum"):
    """The feeder with its devices marked and named, no voltages."""
    u = _unwrapped(env)
    r = FeederRenderer(u.core, node_bound)
    r.scatter.set_array(np.ones(len(r.bus_names)))
    labels = [f"cap {n}" for n in u.cap_names] + [f"reg {n}" for n in u.reg_names] + [f"bat {n}" for n in u.bat_names]
    for text, label in zip(r.device_texts, labels):
        text.set_text(label)
    r.title.set_text(f"{u.env_name}: {len(u.node_names)} nodes, {len(r.bus_names)} buses")
    r.fig.canvas.draw()
    return r.fig

def learning_curve(log: Sequence[dict[str, float]], path: str | Path) -> None:
    """Draw a run's ``log.csv`` rows (:func:`vvc_batch.training.runs.read_log`) to ``path``:
    the test return (mean and std band over the test days), the train return of recent
    episodes and, where logged, the selection days' return, against env steps."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["env_steps"] for r in log]
    mean = np.array([r["test_mean"] for r in log])
    std = np.array([r["test_std"] for r in log])
    ax.plot(steps, mean, label="test mean")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
    ax.plot(steps, [r["train_return"] for r in log], ls="--", label="train (recent episodes)")
    select = np.array([r.get("select_mean", np.nan) for r in log])
    if np.isfinite(select).any():
        ax.plot(steps, select, ls=":", label="train days (deterministic, selects)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["daily_profile", "episode_gif", "learning_curve", "run_episode", "feeder_map"]
