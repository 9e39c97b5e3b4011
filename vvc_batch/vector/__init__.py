"""The vector environment: the gymnasium ``VectorEnv`` (:mod:`.vector_env`) over a pool of worker
processes (:mod:`.pool`, :mod:`.worker`) that step their environments in lockstep
(:mod:`.lockstep`) and exchange actions and results through shared memory
(:mod:`.shared_buffers`)."""

__all__: list[str] = []
