"""The ``opendss`` backend: the OpenDSS engine wrapper (:mod:`.engine`, one DSS C-API context
per environment, state read and written in bulk calls), the backend over K engines
(:mod:`.backend`) and the loader that reads a master file as OpenDSS would
(:mod:`.script`)."""

__all__: list[str] = []
