"""Pictures (needs the ``plots`` extra): frames of a feeder's state for ``render``
(:mod:`.render`) and episode plots and GIFs (:mod:`.plot`)."""

__all__: list[str] = []
