"""Joining or starting Ray for vvc_batch's Ray paths (training, evaluation sweeps); Ray is
imported only when :func:`connect` runs.

``address``: ``None`` starts a new local instance (or joins ``$RAY_ADDRESS`` when set);
``"auto"`` joins the cluster running on this machine; ``"HOST:PORT"`` joins that cluster's
head, which is checked first so that a wrong address fails in seconds with a clear message
rather than after Ray's minutes of retries.
"""

from __future__ import annotations

import os
import socket

from vvc_batch.errors import RayConnectionError


def _check_reachable(address: str, timeout: float) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayConnectionError(f"Ray address {address!r} is not 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayConnectionError(
            f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head --port={port}` "
            f"on {host}, or check the address (`ray status` on the head prints it)"
        ) from exc


def connect(address: str | None = None, *, check_timeout: float = 5.0, **init_kwargs) -> bool:
    """Make sure this process is connected to Ray; returns True when this call connected (so
    the caller should ``ray.shutdown()`` when done), False when Ray was already initialized.

    Raises:
        ImportError: Ray is not installed (the ``ray`` extra).
        RayConnectionError: ``address`` names a cluster that does not answer, or no cluster
            runs on this machine for ``"auto"``.
    """
    try:
        import ray
    except ImportError as exc:
        raise ImportError("this needs Ray: pip install 'vvc_batch[ray]'") from exc
    if ray.is_initialized():
        return False
    init_kwargs.setdefault("include_dashboard", False)
    init_kwargs.setdefault("log_to_driver", False)
    if address is None:
        address = os.environ.get("RAY_ADDRESS") or "local"  # "local": a new instance, never a running one
    if address not in ("local", "auto") and not address.startswith("ray://"):
        _check_reachable(address, check_timeout)
    if address != "local":
        init_kwargs.pop("include_dashboard")  # the cluster's head decides
    try:
        ray.init(address=address, **init_kwargs)
    except ConnectionError as exc:
        raise RayConnectionError(f"cannot join the Ray cluster at {address!r}: {exc}") from exc
    return True


__all__ = ["RayConnectionError", "connect"]
