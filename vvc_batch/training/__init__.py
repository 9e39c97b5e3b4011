"""Training and evaluation (needs the ``train`` extra; ``ray`` for RLlib): run folders
(:mod:`.runs`), the trainers (:mod:`.train` for Stable-Baselines3 and the command line,
:mod:`.rllib_train`), the Stable-Baselines3 adapter (:mod:`.sb3`), RLlib configuration
(:mod:`.rllib`), baselines and returns (:mod:`.evaluation`) and the perfect-information
oracle (:mod:`.oracle`). Nothing here is imported by the environments."""

__all__: list[str] = []
