"""Joining Ray: a wrong address fails fast and clearly (Ray alone retries for minutes)."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is part of the test extra")


def test_unreachable_cluster_fails_fast_with_a_clear_message(capsys, tmp_path):
    """A wrong --address fails in seconds (Ray itself retries for minutes), before a run
    folder is written."""
    import socket
    import time

    from vvc_batch import train

    from vvc_batch.cluster import distributed
    from vvc_batch.cluster.ray_session import RayConnectionError, connect

    assert not ray.is_initialized(), "no other test module may leave Ray running"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(RayConnectionError, match=f"no Ray cluster answers at 127.0.0.1:{port}.*ray start --head"):
        connect(f"127.0.0.1:{port}")
    with pytest.raises(RayConnectionError, match="not 'auto', 'HOST:PORT'"):
        connect("no-port-here")
    code = train.main(["--trainer", "rllib", "--address", f"127.0.0.1:{port}", "--total-steps", "96",
                       "--out", str(tmp_path / "run")])
    assert code == 2 and "no Ray cluster answers" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert distributed.main(["--policy", "hold", "--system", "13Bus", "--profiles", "0", "--address",
                             f"127.0.0.1:{port}", "--no-progress"]) == 2
    assert "no Ray cluster answers" in capsys.readouterr().err
    assert time.monotonic() - t0 < 30
    assert not ray.is_initialized()
