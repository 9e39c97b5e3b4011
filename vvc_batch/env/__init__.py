"""The environment: the batched core that steps K environments as array operations
(:mod:`.core`), the gymnasium environment over it (:mod:`.single_env`), spaces and action
checks (:mod:`.spaces`), the reward (:mod:`.reward`), batteries (:mod:`.battery`), reset
options (:mod:`.reset_options`) and wrappers (:mod:`.wrappers`)."""

__all__: list[str] = []
