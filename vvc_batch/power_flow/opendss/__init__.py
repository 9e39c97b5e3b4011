"""The ``opendss`` backend: the OpenDSS engine wrapper (:mod:`.engine`, one DSS C-API context
per environment, state read and written in bulk calls), the backend over K engines
(:mod:`.backend`) and the master-file reader that inlines a circuit's scripts
(:mod:`.script`)."""

__all__: list[str] = []
