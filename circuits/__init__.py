"""System specifications of the standard Volt-Var control feeders (JSON, one per system).

Installed as ``vvc_batch.circuits``; read by :mod:`vvc_batch.systems.specs`.
"""
