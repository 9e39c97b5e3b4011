"""Train PPO or SAC (Stable-Baselines3) on the vector engine, or PPO with Ray RLlib; needs
the ``train`` extra (``ray`` for RLlib).

    python -m vvc_batch.train --algo ppo|sac --system 13Bus --num-envs 16 --workers 2
        --total-steps N --seed S --out runs/<name> [--eval-every N] [--resume]
        [--profiles auto|powergym|synthetic] [--hparam KEY=VALUE ...]
    python -m vvc_batch.train --backend rllib [--address auto|HOST:PORT] --env-runners R
        --num-envs 16 --workers 2 ...     (16 environments on 2 workers per env runner)

Trains on the train half of a seeded half/half split of the load profiles (stored in the
run folder as ``split.json``), evaluates the deterministic policy on every test profile
every ``--eval-every`` env steps, and writes into the run folder: ``log.csv`` (env steps,
wall time, train return, test mean and std), ``learning_curve.png``, ``model.zip`` and
``config.json`` (with ``--normalize`` also ``vecnormalize.pkl``: observations and rewards
standardized with running statistics). ``--resume`` continues a run from its folder; Ctrl-C
saves what was done. The RLlib backend (:mod:`vvc_batch.train_rllib`) writes the same files,
with the algorithm checkpoint in ``checkpoint/`` in place of ``model.zip``.
PPO and SAC act on ``Box(-1, 1)`` per device (:mod:`vvc_batch.wrappers`: capacitor on above
0, taps and battery levels in order), where a policy can climb the smooth, ordered return
landscape of the taps; ``--actions discrete`` trains PPO on the MultiDiscrete space (33
unordered categories per tap: PPO settles early on a fixed setting). The RLlib backend
trains on the MultiDiscrete space.
``--profiles synthetic`` trains on the built-in profile generator (8500Node's data has no
load shapes of its own); the source is kept in ``config.json`` and used again by
``--resume`` and ``vvc_batch.evaluate``.
``--hparam gamma=0.9`` (repeatable) overrides a Stable-Baselines3 constructor argument; the
overrides are kept in ``config.json`` too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import vvc_batch
from vvc_batch.evaluation import episode_returns, split_profiles
from vvc_batch.profiles import PROFILE_SOURCES


def _policy(model, env, continuous: bool, normalizer=None):
    from vvc_batch.wrappers import _layout, continuous_to_action

    layout = _layout(env)

    def act(obs):
        if normalizer is not None:
            obs = normalizer.normalize_obs(obs)
        a, _ = model.predict(obs, deterministic=True)
        return continuous_to_action(a, *layout) if continuous else a

    return act


def run_profiles(cfg: dict) -> str:
    """A run's load-profile source (``config.json``; runs from before ``--profiles``: auto)."""
    return cfg.get("profiles", "auto")


def run_env(cfg: dict):
    """A single environment of a run's system and profile source."""
    return vvc_batch.make(cfg["system"], profiles=run_profiles(cfg))


def test_returns(model, cfg: dict, profiles, normalizer=None) -> list[float]:
    """Deterministic returns of ``model`` on ``profiles`` (one episode each); ``normalizer``
    is the run's VecNormalize (its observation statistics are applied, not updated)."""
    env = run_env(cfg)
    try:
        return episode_returns(env, _policy(model, env, cfg["continuous_actions"], normalizer), profiles, cfg["seed"])
    finally:
        env.close()


def load_normalizer(run: Path):
    """The run's saved VecNormalize statistics, frozen (None if the run did not normalize)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    path = run / "vecnormalize.pkl"
    if not path.is_file():
        return None
    cfg = json.loads((run / "config.json").read_text())
    norm = VecNormalize.load(str(path), DummyVecEnv([lambda: run_env(cfg)]))
    norm.training = False
    norm.norm_reward = False
    return norm


def _plot(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["env_steps"] for r in log]
    mean = np.array([r["test_mean"] for r in log])
    std = np.array([r["test_std"] for r in log])
    ax.plot(steps, mean, label="test mean")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
    train = [r["train_return"] for r in log]
    ax.plot(steps, train, ls="--", label="train (recent episodes)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


LOG_COLUMNS = ("env_steps", "wall_s", "train_return", "test_mean", "test_std")


HPARAM_HELP = "KEY=VALUE: a Stable-Baselines3 constructor argument (e.g. gamma=0.9, ent_coef=0.01); repeatable"


def parse_hparams(algo: str, items: list[str]) -> dict[str, Any]:
    """``["gamma=0.9", ...]`` as constructor arguments of the SB3 algorithm (values read as
    JSON where they parse, e.g. numbers, else as strings).

    Raises:
        ValueError: an item without ``=``, or a key the algorithm's constructor does not take.
    """
    import inspect

    if not items:
        return {}
    from stable_baselines3 import PPO, SAC

    params = {k for k in inspect.signature({"ppo": PPO, "sac": SAC}[algo].__init__).parameters
              if not k.startswith("_")} - {"self", "policy", "env"}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--hparam {item!r}: expected KEY=VALUE")
        if key not in params or key in ("seed", "verbose"):
            allowed = ", ".join(sorted(params - {"seed", "verbose"}))
            raise ValueError(f"--hparam {key!r} is not a {algo.upper()} argument; allowed: {allowed}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def prepare_run(args: argparse.Namespace) -> tuple[dict, dict, list[dict[str, Any]]] | int:
    """The run folder's config, split and log so far: written for a new run, read for
    ``--resume``. Returns an exit code instead when the run cannot start."""
    out = Path(args.out)
    cfg_path, split_path = out / "config.json", out / "split.json"
    if args.resume:
        if not cfg_path.is_file():
            print(f"error: nothing to resume in {out} (no config.json)", file=sys.stderr)
            return 2
        cfg = json.loads(cfg_path.read_text())
        cfg["total_steps"] = args.total_steps or cfg["total_steps"]
        split = json.loads(split_path.read_text())
    else:
        vvc_batch.parse_env_name(args.system)
        probe = vvc_batch.make(args.system, profiles=args.profiles).unwrapped
        n = probe.num_profiles
        cbat = probe.core.config.continuous_battery
        probe.close()
        if n < 2:
            hint = "; --profiles synthetic trains on the built-in profile generator" if n == 0 else ""
            print(f"error: {args.system} has {n} load profiles (--profiles {args.profiles}); training needs at "
                  f"least 2{hint}", file=sys.stderr)
            return 2
        train_p, test_p = split_profiles(n, args.seed)
        split = {"seed": args.seed, "train": train_p, "test": test_p}
        cfg = {"algo": args.algo, "system": args.system, "num_envs": args.num_envs, "workers": args.workers,
               "total_steps": args.total_steps, "seed": args.seed, "eval_every": args.eval_every,
               "actions": args.actions, "continuous_actions": args.actions == "box" or cbat,
               "normalize": args.normalize,
               "profiles": args.profiles, "hparams": parse_hparams(args.algo, args.hparam or []),
               "backend": args.backend, "vvc_batch": vvc_batch.__version__}
        if args.backend == "rllib":
            cfg.update(env_runners=args.env_runners, continuous_actions=False, normalize=False)
        out.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        split_path.write_text(json.dumps(split))
    log = read_log(out) if args.resume else []
    return cfg, split, log


def read_log(out: Path) -> list[dict[str, float]]:
    """The rows of a run folder's ``log.csv`` (one per evaluation; keys :data:`LOG_COLUMNS`),
    empty when there is none yet."""
    path = Path(out) / "log.csv"
    if not path.is_file():
        return []
    return [dict(zip(LOG_COLUMNS, map(float, r.split(",")))) for r in path.read_text().splitlines()[1:] if r]


def write_log(log: list[dict[str, Any]], out: Path) -> None:
    """``log.csv`` (one row per evaluation) and ``learning_curve.png`` of a run folder."""
    with open(out / "log.csv", "w") as fh:
        fh.write(",".join(LOG_COLUMNS) + "\n")
        for r in log:
            fh.write(f"{int(r['env_steps'])},{r['wall_s']:.3f},{r['train_return']:.6f},{r['test_mean']:.6f},"
                     f"{r['test_std']:.6f}\n")
    if log:
        _plot(log, out / "learning_curve.png")


def print_summary(what: str, cfg: dict, split: dict, log: list[dict[str, Any]], out: Path) -> None:
    """The last evaluation of a run, in one line."""
    if log:
        last = log[-1]
        print(f"{what} on {cfg['system']}: {int(last['env_steps'])} env steps, test return "
              f"{last['test_mean']:.3f} +- {last['test_std']:.3f} over {len(split['test'])} profiles; run in {out}")


def train(args: argparse.Namespace) -> int:
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize
    from tqdm import tqdm

    from vvc_batch.sb3 import SB3VecEnv

    out = Path(args.out)
    model_path = out / "model.zip"
    prepared = prepare_run(args)
    if isinstance(prepared, int):
        return prepared
    cfg, split, log = prepared
    venv = VecMonitor(SB3VecEnv.make(cfg["system"], cfg["num_envs"], num_workers=cfg["workers"],
                                     continuous_actions=cfg["continuous_actions"], train_profiles=split["train"],
                                     profiles=run_profiles(cfg)))
    if cfg.get("normalize", False):
        # node voltages sit near 1.0 pu: standardized inputs may help some algorithms
        norm_path = out / "vecnormalize.pkl"
        venv = VecNormalize.load(str(norm_path), venv) if args.resume and norm_path.is_file() else \
            VecNormalize(venv, gamma=0.99)
    algo = {"ppo": PPO, "sac": SAC}[cfg["algo"]]
    if args.resume and model_path.is_file():
        model = algo.load(model_path, env=venv)
    else:
        if cfg["algo"] == "ppo":
            # a rollout of 48 hours (two days) per environment; minibatches of two days x envs / 2.
            # gamma 0.9: an action's effect on the day's losses is immediate; only the switching
            # cost links hours. On Box actions the exploration noise starts narrow (std e^-2,
            # about two tap steps): with std 1 every hour's jitter costs reg_w per tap step and
            # PPO flees to the bounds (the reset taps), where clipping leaves no gradient.
            kwargs = {"n_steps": 48, "batch_size": max(48, 24 * cfg["num_envs"]), "gamma": 0.9}
            if cfg["continuous_actions"]:
                kwargs["policy_kwargs"] = {"log_std_init": -2.0}
        else:
            # the replay buffer holds the whole run and no more: SB3's default of 1M transitions
            # would ask for 2 x 32 GiB of observations on 8500Node
            kwargs = {"learning_starts": min(1000, cfg["total_steps"] // 10),
                      "buffer_size": max(1, min(1_000_000, cfg["total_steps"] + cfg["num_envs"]))}
        kwargs.update(cfg.get("hparams", {}))
        model = algo("MlpPolicy", venv, seed=cfg["seed"], verbose=0, **kwargs)
    # the run folder's log.csv is the record; SB3's default logger would leave an empty
    # SB3-<date> folder in the temporary directory on every run
    model.set_logger(Logger(folder=None, output_formats=[]))
    every = cfg["eval_every"] or max(cfg["num_envs"] * 24, cfg["total_steps"] // 10)
    t0 = time.perf_counter() - (log[-1]["wall_s"] if log else 0.0)
    done_steps = int(model.num_timesteps)
    bar = tqdm(total=cfg["total_steps"], initial=min(done_steps, cfg["total_steps"]), unit="step", file=sys.stderr,
               desc=f"{cfg['algo']} {cfg['system']}")

    def evaluate_now(steps: int) -> None:
        rets = test_returns(model, cfg, split["test"], venv if isinstance(venv, VecNormalize) else None)
        recent = [e["r"] for e in model.ep_info_buffer] if model.ep_info_buffer else [float("nan")]
        row = {"env_steps": steps, "wall_s": time.perf_counter() - t0, "train_return": float(np.mean(recent)),
               "test_mean": float(np.mean(rets)), "test_std": float(np.std(rets))}
        log.append(row)
        bar.set_postfix(test=f"{row['test_mean']:.2f}", steps_per_s=f"{steps / max(row['wall_s'], 1e-9):.0f}")

    class Progress(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval = (done_steps // every + 1) * every

        def _on_step(self) -> bool:
            bar.update(min(self.num_timesteps, cfg["total_steps"]) - bar.n)
            if self.num_timesteps >= self.next_eval:
                evaluate_now(self.num_timesteps)
                self.next_eval += every
            return True

    def save() -> None:
        model.save(model_path)
        if isinstance(venv, VecNormalize):
            venv.save(str(out / "vecnormalize.pkl"))
        write_log(log, out)

    code = 0
    try:
        remaining = cfg["total_steps"] - done_steps
        if remaining > 0:
            model.learn(remaining, callback=Progress(), reset_num_timesteps=False)
        if not log or log[-1]["env_steps"] < model.num_timesteps:
            evaluate_now(int(model.num_timesteps))
    except KeyboardInterrupt:
        print(f"\ninterrupted at {model.num_timesteps} env steps; saving the run", file=sys.stderr)
        code = 130
    finally:
        save()
        bar.close()
        venv.close()
    print_summary(cfg["algo"], cfg, split, log, out)
    return code


def _run_backend(out: str) -> str:
    path = Path(out) / "config.json"
    return json.loads(path.read_text()).get("backend", "sb3") if path.is_file() else "sb3"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vvc_batch.train", description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=["ppo", "sac"], default="ppo")
    p.add_argument("--system", default="13Bus", help="environment name, e.g. 34Bus_soc")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--total-steps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=0, help="env steps between evaluations (default: a tenth)")
    p.add_argument("--out", default=None, help="run folder (default runs/<algo>_<system>_<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--profiles", choices=PROFILE_SOURCES, default="auto",
                   help="load-profile source (synthetic: the built-in generator, for data without load shapes)")
    p.add_argument("--actions", choices=["box", "discrete"], default=None,
                   help="box (default for sb3): Box(-1, 1) per device, taps in order (see vvc_batch.wrappers); "
                        "discrete: PPO on the MultiDiscrete space (the rllib backend's)")
    p.add_argument("--hparam", action="append", default=None, metavar="KEY=VALUE", help=HPARAM_HELP)
    p.add_argument("--normalize", action="store_true", help="standardize observations and rewards (VecNormalize)")
    p.add_argument("--backend", choices=["sb3", "rllib"], default="sb3",
                   help="Stable-Baselines3 in this process, or Ray RLlib env runners (PPO)")
    p.add_argument("--address", default=None,
                   help="rllib: the Ray cluster to join (auto or HOST:PORT; default: a local Ray instance)")
    p.add_argument("--env-runners", type=int, default=1,
                   help="rllib: env runners, each with --num-envs environments on --workers workers")
    args = p.parse_args(argv)
    try:
        args.system = vvc_batch.parse_env_name(args.system).name  # a full id names the same run
    except vvc_batch.UnknownSystemError:
        pass  # reported by prepare_run
    prefix = "rllib_" if args.backend == "rllib" else ""
    args.out = args.out or f"runs/{prefix}{args.algo}_{args.system}_{args.seed}"
    if args.backend == "sb3" and (args.address is not None or args.env_runners != 1):
        p.error("--address and --env-runners apply to --backend rllib")
    if args.workers < 1 or args.num_envs < 1 or args.env_runners < 0:
        p.error("--num-envs and --workers must be at least 1, --env-runners at least 0")
    if args.actions is not None and args.resume:
        p.error("--actions is fixed when a run starts (see its config.json); --resume keeps the run's")
    if args.actions == "discrete" and args.algo == "sac":
        p.error("SAC needs --actions box")
    if args.actions == "box" and args.backend == "rllib":
        p.error("the rllib backend trains on the MultiDiscrete space (--actions discrete)")
    args.actions = args.actions or ("discrete" if args.backend == "rllib" else "box")
    if args.hparam:
        if args.backend == "rllib":
            p.error("--hparam sets Stable-Baselines3 arguments; it applies to --backend sb3")
        if args.resume:
            p.error("--hparam is fixed when a run starts (see its config.json); --resume keeps the run's")
        try:
            parse_hparams(args.algo, args.hparam)
        except ValueError as exc:
            p.error(str(exc))
    try:
        if args.backend == "rllib" or (args.resume and _run_backend(args.out) == "rllib"):
            from vvc_batch.train_rllib import train_rllib

            return train_rllib(args)
        return train(args)
    except vvc_batch.VVCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
