"""Import paths of the modules that moved into subpackages (release 0.2), kept working.

``import vvc_batch.wrappers`` (and ``from vvc_batch.wrappers import X``; submodules of a
moved package too, ``vvc_batch.batched.solver``) still gives the module, now :mod:`vvc_batch.env.wrappers`, with a :class:`DeprecationWarning` that names its
new home. The command-line modules kept their names (``python -m vvc_batch.train``, ...).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

#: old module name -> the module it now is
MOVED_MODULES = {
    "vvc_batch.feeder_spec": "vvc_batch.systems.feeder_spec",
    "vvc_batch.profiles": "vvc_batch.systems.profiles",
    "vvc_batch.synthetic_profiles": "vvc_batch.systems.synthetic_profiles",
    "vvc_batch.placement": "vvc_batch.systems.placement",
    "vvc_batch.core": "vvc_batch.env.core",
    "vvc_batch.spaces": "vvc_batch.env.spaces",
    "vvc_batch.reward": "vvc_batch.env.reward",
    "vvc_batch.battery": "vvc_batch.env.battery",
    "vvc_batch.reset_options": "vvc_batch.env.reset_options",
    "vvc_batch.wrappers": "vvc_batch.env.wrappers",
    "vvc_batch.opendss_backend": "vvc_batch.power_flow.opendss.backend",
    "vvc_batch.engine": "vvc_batch.power_flow.opendss.engine",
    "vvc_batch.dss_script": "vvc_batch.power_flow.opendss.script",
    "vvc_batch.batched": "vvc_batch.power_flow.batched",
    "vvc_batch.vector_env": "vvc_batch.vector.vector_env",
    "vvc_batch.pool": "vvc_batch.vector.pool",
    "vvc_batch.worker": "vvc_batch.vector.worker",
    "vvc_batch.lockstep": "vvc_batch.vector.lockstep",
    "vvc_batch.shared_buffers": "vvc_batch.vector.shared_buffers",
    "vvc_batch.runs": "vvc_batch.training.runs",
    "vvc_batch.train_rllib": "vvc_batch.training.rllib_train",
    "vvc_batch.sb3": "vvc_batch.training.sb3",
    "vvc_batch.rllib": "vvc_batch.training.rllib",
    "vvc_batch.evaluation": "vvc_batch.training.evaluation",
    "vvc_batch.oracle": "vvc_batch.training.oracle",
    "vvc_batch.ray_session": "vvc_batch.cluster.ray_session",
    "vvc_batch.render": "vvc_batch.viz.render",
    "vvc_batch.plot": "vvc_batch.viz.plot",
    "vvc_batch.bench_scaling": "vvc_batch.bench.scaling",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec) -> ModuleType:
        old = spec.name
        warnings.warn(f"{old} moved to {self.target}; import it from there", DeprecationWarning, stacklevel=3)
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The target module is already executed; give it back its own spec (the import
        system set the alias's)."""
        module.__spec__ = self._spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        if not fullname.startswith("vvc_batch."):
            return None
        head, _, tail = fullname.partition(".")[2].partition(".")
        new = MOVED_MODULES.get(f"vvc_batch.{head}")
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"{new}.{tail}" if tail else new))


def install_moved_module_aliases() -> None:
    """Let the old import paths of moved modules find their new modules (idempotent)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        # first: a moved package's submodules must not be found again under the old name
        sys.meta_path.insert(0, _MovedModuleFinder())


__all__ = ["MOVED_MODULES", "install_moved_module_aliases"]
