"""Systems and their data: the registry of system specs (``circuits/*.json``) and
environment names (:mod:`.specs`), users' feeder specs (:mod:`.feeder_spec`), where load
profiles come from (:mod:`.profiles`, :mod:`.synthetic_profiles`), PowerGym's circuit data
fetched and verified (:mod:`.fetch`), and battery placement (:mod:`.placement`)."""

from vvc_batch.systems.specs import (
    DATA_ENV_VAR,
    CircuitSource,
    EnvConfig,
    RegulatorSpec,
    RewardWeights,
    SystemSpec,
    circuit_source,
    load_system,
    parse_env_name,
    system_names,
    valid_env_names,
)

__all__ = [
    "DATA_ENV_VAR",
    "CircuitSource",
    "EnvConfig",
    "RegulatorSpec",
    "RewardWeights",
    "SystemSpec",
    "circuit_source",
    "load_system",
    "parse_env_name",
    "system_names",
    "valid_env_names",
]
