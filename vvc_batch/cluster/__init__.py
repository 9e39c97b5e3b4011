"""Beyond one machine, on Ray (needs the ``ray`` extra): joining a cluster
(:mod:`.ray_session`) and evaluation sweeps over actors that each hold one vector environment
(:mod:`.distributed`)."""

__all__: list[str] = []
