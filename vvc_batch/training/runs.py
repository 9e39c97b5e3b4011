"""Run folders: what one training run (``python -m vvc_batch.train``) writes, and everything
that reads it back (resuming, ``python -m vvc_batch.evaluate``, :mod:`vvc_batch.cluster.distributed`,
``benchmarks/train_table.py``).

A run folder holds:

* ``config.json``: the run's settings (``algo``, ``system``, ``trainer``: ``"sb3"`` or
  ``"rllib"``, ``backend``: the power-flow backend, ``"opendss"`` or ``"batched"``,
  ``profiles``: the load-profile source, ``seed``, ``num_envs``, ...);
* ``split.json``: the seeded train/test split of the load profiles;
* ``log.csv``: one row per evaluation (:data:`LOG_COLUMNS`) and ``learning_curve.png``;
* the trained model: ``model.zip`` (Stable-Baselines3; with ``--normalize`` also
  ``vecnormalize.pkl``) or the RLlib algorithm checkpoint ``checkpoint/``.

    run = Run.open("runs/ppo_13Bus_0")
    run.trainer, run.backend, run.profiles       # "sb3", "opendss", "auto"
    act = run.policy()                           # deterministic: observation -> action
    run.returns()                                # one test return per test profile

Run folders written before the power-flow backend existed stored the trainer as
``"backend": "sb3" | "rllib"``; :func:`normalize_config` reads those as that trainer on the
OpenDSS backend (the one place that knows). Stable-Baselines3, torch and Ray are imported
only when a model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import vvc_batch
from vvc_batch.errors import VVCError
from vvc_batch.training.evaluation import Policy, episode_returns
from vvc_batch.power_flow.interface import BACKENDS

#: trainers of ``python -m vvc_batch.train --trainer``
TRAINERS = ("sb3", "rllib")
#: algorithms of ``--algo`` (RLlib trains PPO only)
ALGORITHMS = ("ppo", "sac")
#: columns every row of ``log.csv`` has
LOG_COLUMNS = ("env_steps", "wall_s", "train_return", "test_mean", "test_std")
#: columns a row may leave out (NaN; logs written before them have none): ``select_mean``,
#: the deterministic policy's mean return on the selection days (:attr:`Run.selection_profiles`);
#: ``env_s``, ``learner_s``, ``eval_s``: the run's seconds so far in the training environments
#: (reset and step), in the learner (everything else: rollouts' policy calls, updates) and in
#: the evaluations
LOG_OPTIONAL = ("select_mean", "env_s", "learner_s", "eval_s")
#: most train days the checkpoint selection plays (a seeded subset of larger train splits)
SELECT_DAYS = 64

#: most environments of a test-evaluation engine (:meth:`Run.eval_env`)
EVAL_ENVS = 32

CONFIG = "config.json"
SPLIT = "split.json"
LOG = "log.csv"
CURVE = "learning_curve.png"
MODEL = "model.zip"
NORMALIZER = "vecnormalize.pkl"
SELECTED_MODEL = "model_selected.zip"
SELECTED_NORMALIZER = "vecnormalize_selected.pkl"
SELECTED_MODULE = "module_selected"
CHECKPOINT = "checkpoint"


class RunFolderError(VVCError, FileNotFoundError):
    """A folder that is not a training run folder, or lacks what is asked of it."""


def normalize_config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run's ``config.json`` with ``trainer`` and ``backend`` (power flow) set.

    Older run folders have no ``trainer`` and store the trainer as ``"backend": "sb3"`` or
    ``"rllib"`` (before the power-flow backend existed): they are read as that trainer on
    the ``"opendss"`` backend. Without either key: ``"sb3"`` on ``"opendss"``.

    Raises:
        ValueError: an unknown trainer or backend.
    """
    cfg = dict(config)
    backend = cfg.get("backend")
    if backend in TRAINERS:  # an old run: "backend" named the trainer
        cfg.setdefault("trainer", backend)
        backend = None
    cfg["trainer"] = cfg.get("trainer") or "sb3"
    cfg["backend"] = backend or "opendss"
    if cfg["trainer"] not in TRAINERS:
        raise ValueError(f"unknown trainer {cfg['trainer']!r} in a run's config; valid: {', '.join(TRAINERS)}")
    if cfg["backend"] not in BACKENDS:
        raise ValueError(f"unknown power-flow backend {cfg['backend']!r} in a run's config; valid: "
                         f"{', '.join(BACKENDS)}")
    return cfg


def read_log(folder: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of a run folder's ``log.csv`` (one per evaluation; keys :data:`LOG_COLUMNS`
    and :data:`LOG_OPTIONAL`, NaN where the file has no such column); empty when there is
    none (yet)."""
    path = Path(folder) / LOG
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    if not lines:
        return []
    header = lines[0].split(",")
    rows = []
    for line in lines[1:]:
        if line:
            row = dict.fromkeys(LOG_COLUMNS + LOG_OPTIONAL, float("nan"))
            row.update(zip(header, map(float, line.split(","))))
            rows.append(row)
    return rows


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with a run's ``config.json``."""
    return (Path(path) / CONFIG).is_file()


@dataclasses.dataclass
class Run:
    """One training run folder: its settings, split, log and saved model.

    ``Run(path, config, split)`` is a run in memory (nothing written; :meth:`save` writes
    ``config.json`` and ``split.json``); :meth:`create` writes a new one, :meth:`open` reads
    one back. ``config`` is normalized (:func:`normalize_config`).

    Attributes:
        path: the run folder.
        config: the contents of ``config.json``.
        split: the contents of ``split.json`` (``{"seed", "train", "test"}``), or ``None``
            where a folder has none.
        log: the rows of ``log.csv`` (see :data:`LOG_COLUMNS`).
    """

    path: Path
    config: dict[str, Any]
    split: dict[str, Any] | None = None
    log: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.config = normalize_config(self.config)

    # ------------------------------------------------------------------ folder
    @classmethod
    def create(cls, out: str | os.PathLike[str], config: dict[str, Any], split: dict[str, Any]) -> "Run":
        """Write a new run's ``config.json`` and ``split.json`` into ``out`` (created if
        needed) and return it (with an empty log)."""
        return cls(Path(out), config, split).save()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "Run":
        """The run folder ``path`` (or the folder of a file in it, e.g. its ``model.zip``),
        with its config, split and log.

        Raises:
            RunFolderError: ``path`` has no ``config.json``.
        """
        p = Path(path)
        folder = p.parent if p.is_file() else p
        if not (folder / CONFIG).is_file():
            what = "does not exist" if not p.exists() else "has no config.json"
            raise RunFolderError(f"{str(folder)!r} is not a training run folder: it {what}")
        config = json.loads((folder / CONFIG).read_text())
        split = json.loads((folder / SPLIT).read_text()) if (folder / SPLIT).is_file() else None
        return cls(folder, config, split, read_log(folder))

    def save(self) -> "Run":
        """Write ``config.json`` and ``split.json`` (creating the folder); returns the run."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        if self.split is not None:
            self.split_path.write_text(json.dumps(self.split))
        return self

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def split_path(self) -> Path:
        return self.path / SPLIT

    @property
    def log_path(self) -> Path:
        return self.path / LOG

    @property
    def curve_path(self) -> Path:
        """The learning-curve plot (written with the log)."""
        return self.path / CURVE

    @property
    def model_path(self) -> Path:
        """The Stable-Baselines3 model (``model.zip``)."""
        return self.path / MODEL

    @property
    def normalizer_path(self) -> Path:
        """The Stable-Baselines3 ``VecNormalize`` statistics (runs with ``--normalize``)."""
        return self.path / NORMALIZER

    @property
    def selected_model_path(self) -> Path:
        """The selected Stable-Baselines3 model (``model_selected.zip``): the one with the best
        return on the selection days among the evaluations so far (see :meth:`selected_row`)."""
        return self.path / SELECTED_MODEL

    @property
    def selected_normalizer_path(self) -> Path:
        """The ``VecNormalize`` statistics saved with the selected model."""
        return self.path / SELECTED_NORMALIZER

    @property
    def selected_module_path(self) -> Path:
        """The selected RLlib policy module (a folder, ``module_selected/``)."""
        return self.path / SELECTED_MODULE

    @property
    def checkpoint_path(self) -> Path:
        """The RLlib algorithm checkpoint (a folder)."""
        return self.path / CHECKPOINT

    # ------------------------------------------------------------------ settings
    @property
    def trainer(self) -> str:
        """``"sb3"`` or ``"rllib"``."""
        return self.config["trainer"]

    @property
    def backend(self) -> str:
        """The power-flow backend the run trains and evaluates on (``"opendss"``, ``"batched"``)."""
        return self.config["backend"]

    @property
    def algo(self) -> str:
        return self.config.get("algo", "ppo")

    @property
    def system(self) -> str:
        return self.config["system"]

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def profiles(self) -> str:
        """The run's load-profile source (runs from before ``--profiles``: ``"auto"``)."""
        return self.config.get("profiles", "auto")

    @property
    def continuous_actions(self) -> bool:
        """Whether the policy acts on ``Box(-1, 1)`` per device (Stable-Baselines3 runs)."""
        return bool(self.config.get("continuous_actions", False))

    @property
    def selects(self) -> bool:
        """Whether the run keeps the policy that did best on train days (``"select": "train"``
        in its config) rather than the last one."""
        return self.config.get("select") == "train"

    @property
    def selection_profiles(self) -> list[int]:
        """The train days the checkpoint selection plays (empty when the run does not
        select): the whole train split, or a subset of :data:`SELECT_DAYS` seeded by the
        run's seed. Never a test day: the test return of the kept policy stays unbiased."""
        if not self.selects or not self.split:
            return []
        train = [int(p) for p in self.split["train"]]
        if len(train) <= SELECT_DAYS:
            return train
        pick = np.random.default_rng(self.seed).choice(len(train), size=SELECT_DAYS, replace=False)
        return [train[i] for i in sorted(pick)]

    def selected_row(self) -> dict[str, float] | None:
        """The log row of the policy the folder gives (:meth:`policy`): in a selecting run the
        first evaluation with the best ``select_mean``, otherwise (or before any selection
        evaluation) the last row; ``None`` with an empty log."""
        if not self.log:
            return None
        if self.selects:
            scored = [r for r in self.log if np.isfinite(r.get("select_mean", float("nan")))]
            if scored:
                return max(scored, key=lambda r: r["select_mean"])  # max keeps the first of equals
        return self.log[-1]

    def env_kwargs(self, *, backend: str | None = None, profiles: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`vvc_batch.make` / :func:`vvc_batch.make_vec` for the
        run's environments: its profile source and power-flow backend (or these overrides)."""
        return {"profiles": profiles or self.profiles, "backend": backend or self.backend}

    def env(self, system: str | None = None, **overrides: Any) -> Any:
        """A single environment of the run's system (or ``system``), profile source and
        backend (``overrides``: see :meth:`env_kwargs`)."""
        return vvc_batch.make(system or self.system, **self.env_kwargs(**overrides))

    def eval_env(self, num_envs: int | None = None, **overrides: Any) -> Any:
        """The vector environment that plays the test evaluations (``autoreset_mode="Disabled"``):
        ``num_envs`` environments (default: one per test profile, at most
        :data:`EVAL_ENVS`) on the run's workers, profile source and backend; the returns are
        those of a single environment (:func:`~vvc_batch.training.evaluation.vector_episode_returns`)."""
        tests = len(self.split["test"]) if self.split else 1
        n = int(num_envs or max(1, min(tests, EVAL_ENVS)))
        workers = max(1, min(n, int(self.config.get("workers", 1))))
        return vvc_batch.make_vec(self.system, num_envs=n, num_workers=workers, autoreset_mode="Disabled",
                                  **self.env_kwargs(**overrides))

    def backend_returns(self) -> dict[str, float]:
        """The saved policy's mean test return on each power-flow backend (same test days,
        same seeds): the policy should not depend on the solver it trained on."""
        out = {}
        for b in BACKENDS:
            with self.eval_env(backend=b) as evals:
                out[b] = float(np.mean(self.returns(env=evals)))
        return out

    # ------------------------------------------------------------------ log
    def append_log(self, row: dict[str, float]) -> None:
        """Add an evaluation row (keys :data:`LOG_COLUMNS`, optionally :data:`LOG_OPTIONAL`)
        to :attr:`log`; :meth:`write_log` writes it out (with the model, so that the two stay
        in step)."""
        missing = set(LOG_COLUMNS) - set(row)
        if missing:
            raise ValueError(f"a log row needs {', '.join(LOG_COLUMNS)}; missing {', '.join(sorted(missing))}")
        unknown = set(row) - set(LOG_COLUMNS) - set(LOG_OPTIONAL)
        if unknown:
            raise ValueError(f"unknown log column(s) {', '.join(sorted(unknown))}; valid: "
                             f"{', '.join(LOG_COLUMNS + LOG_OPTIONAL)}")
        self.log.append({k: float(row.get(k, float("nan"))) for k in LOG_COLUMNS + LOG_OPTIONAL})

    def spent_seconds(self) -> dict[str, float]:
        """``{"env_s", "eval_s"}`` of the log's last row (0 where absent: an empty or old log):
        where a resumed run's time split goes on from (seconds)."""
        last = self.log[-1] if self.log else {}
        return {k: float(last[k]) if np.isfinite(last.get(k, np.nan)) else 0.0 for k in ("env_s", "eval_s")}

    def record_evaluation(self, policy: Policy, env: Any, *, env_steps: int, train_return: float,
                          started: float, env_s: float, eval_s: float, save_kept: Callable[[], None]) -> float:
        """One evaluation during training: play ``policy`` on the test days and, in a selecting
        run, on the selection days (:attr:`selection_profiles`) on ``env`` (the evaluation
        engine); append the log row, its wall time (seconds since ``started``, a
        ``time.perf_counter()`` value) split into ``env_s`` (the training environments' time so
        far), the evaluations' (``eval_s`` so far plus this one's) and the learner's (the
        rest). When the train-day return beats every earlier row's, ``save_kept()`` stores the
        policy as the kept one and the log is written (it names the kept policy's row).
        Returns the evaluations' seconds so far, this one included."""
        t = time.perf_counter()
        test = self.returns(policy, env=env)
        days = self.selection_profiles
        chosen = float(np.mean(self.returns(policy, days, env=env))) if days else float("nan")
        eval_s += time.perf_counter() - t
        kept = self.selected_row()
        best = kept.get("select_mean", np.nan) if kept is not None else np.nan
        wall = time.perf_counter() - started
        self.append_log({"env_steps": env_steps, "wall_s": wall, "train_return": float(train_return),
                         "test_mean": float(np.mean(test)), "test_std": float(np.std(test)), "select_mean": chosen,
                         "env_s": env_s, "eval_s": eval_s, "learner_s": wall - env_s - eval_s})
        # the selection sees train days only: the kept policy's test return is unbiased
        if days and not chosen <= best:  # a NaN best (no earlier selection) is beaten too
            save_kept()
            self.write_log()
        return eval_s

    def write_log(self) -> None:
        """Write ``log.csv`` and (when there are rows) ``learning_curve.png``."""
        from vvc_batch.viz.plot import learning_curve

        self.path.mkdir(parents=True, exist_ok=True)
        columns = LOG_COLUMNS + LOG_OPTIONAL
        with open(self.log_path, "w") as fh:
            fh.write(",".join(columns) + "\n")
            for r in self.log:
                values = [f"{int(r['env_steps'])}"] + [
                    f"{r.get(k, float('nan')):.{3 if k.endswith('_s') else 6}f}" for k in columns[1:]]
                fh.write(",".join(values) + "\n")
        if self.log:
            learning_curve(self.log, self.curve_path)

    def summary(self, what: str) -> str:
        """The kept policy's evaluation (:meth:`selected_row`) in one line (empty without one)."""
        row = self.selected_row()
        if row is None:
            return ""
        tested = f" over {len(self.split['test'])} profiles" if self.split else ""
        last = int(self.log[-1]["env_steps"])
        kept = "" if row is self.log[-1] else f" (the policy of {int(row['env_steps'])} env steps, best on train days)"
        return (f"{what} on {self.system}: {last} env steps, test return {row['test_mean']:.3f} "
                f"+- {row['test_std']:.3f}{tested}{kept}; run in {self.path}")

    def time_split(self) -> dict[str, float] | None:
        """Where the run's time went at its last evaluation: ``wall_s``, ``env_s``,
        ``learner_s``, ``eval_s`` (seconds) and ``env_steps_per_s`` (env steps over wall
        time), or ``None`` for logs without the split."""
        if not self.log or not np.isfinite(self.log[-1].get("env_s", float("nan"))):
            return None
        last = self.log[-1]
        out = {k: float(last[k]) for k in ("wall_s", "env_s", "learner_s", "eval_s")}
        out["env_steps_per_s"] = float(last["env_steps"]) / max(out["wall_s"], 1e-9)
        return out

    # ------------------------------------------------------------------ policy
    def normalizer(self) -> Any:
        """The run's saved ``VecNormalize`` statistics (see
        :func:`vvc_batch.training.policies.run_normalizer`), or ``None``."""
        from vvc_batch.training.policies import run_normalizer

        return run_normalizer(self)

    def policy(self, env: Any = None, *, device: str = "auto") -> Policy:
        """The deterministic policy saved in the folder: observation(s) -> action(s) (see
        :func:`vvc_batch.training.policies.run_policy`).

        Raises:
            RunFolderError: no saved model (``model.zip``, or ``checkpoint/`` for RLlib).
        """
        from vvc_batch.training.policies import run_policy

        return run_policy(self, env, device=device)

    def saved(self, selected: Path, last: Path) -> Path:
        """The selected model's file (or folder) in a selecting run that has one, else the
        last one's."""
        return selected if self.selects and selected.exists() else last

    def returns(self, policy: Policy | None = None, profiles: Sequence[int] | None = None, *,
                env: Any = None) -> list[float]:
        """Deterministic episode returns, one per profile (default: the split's test
        profiles), each reset with seed ``seed + profile`` as the training's evaluations are.

        ``policy``: default the folder's (:meth:`policy`); ``env``: a single environment or
        the run's evaluation engine (:meth:`eval_env`) to play on (default: a new single
        environment of the run's, closed here). Both give the same returns.
        """
        if profiles is None:
            if self.split is None:
                raise RunFolderError(f"run folder {str(self.path)!r} has no split.json")
            profiles = self.split["test"]
        own = env is None
        env = self.env() if own else env
        try:
            act = self.policy(env) if policy is None else policy
            return episode_returns(env, act, profiles, self.seed)
        finally:
            if own:
                env.close()


__all__ = ["ALGORITHMS", "LOG_COLUMNS", "LOG_OPTIONAL", "SELECT_DAYS", "TRAINERS", "Run", "RunFolderError", "is_run_folder",
           "normalize_config", "read_log"]
