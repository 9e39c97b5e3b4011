"""The downloader, against a local HTTP server serving the reference systems folder."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.systems.fetch import FetchError, fetch, git_blob_sha1, load_manifest, main, status
from conftest import DATA


class _Server:
    """Serves DATA under /systems/; some paths can be corrupted, truncated or counted."""

    def __init__(self):
        self.corrupt: set[str] = set()
        self.drop: set[str] = set()
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                rel = self.path.removeprefix("/systems/")
                path = DATA / rel
                if not self.path.startswith("/systems/") or not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                if rel in outer.corrupt:
                    body = body[:-1] + bytes([body[-1] ^ 1])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if rel in outer.drop:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".part-" in p.name]


def test_manifest_matches_reference_files():
    header, entries = load_manifest()
    assert header["commit"] == "c9fc6d8357308a1f2bd2389474b56089c2a6bd78" and len(entries) == 80
    e = next(e for e in entries if e.path == "systems/13Bus/Battery.csv")
    assert git_blob_sha1((DATA / e.local).read_bytes()) == e.sha1
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


def test_fetch_verify_skip_and_use(server, tmp_path):
    dest = tmp_path / "data"
    assert fetch(["13Bus", "34Bus"], dest, server.url, show_progress=False) == dest
    rep = status(dest, ["13Bus", "34Bus", "123Bus"])["systems"]
    assert rep["13Bus"]["verified"] == rep["13Bus"]["files"] == 8
    assert rep["34Bus"]["verified"] == 12 and rep["123Bus"]["verified"] == 0
    n = len(server.requests)
    fetch(["13Bus", "34Bus"], dest, server.url, show_progress=False)
    assert len(server.requests) == n  # everything verified: nothing downloaded again
    env = vvc_batch.make("34Bus", data_dir=dest)
    assert env.unwrapped.num_profiles == 16
    env.reset(seed=0)


def test_corrupted_file_is_rejected(server, tmp_path, capsys):
    server.corrupt.add("13Bus/IEEE13Nodeckt_daily.dss")
    dest = tmp_path / "data"
    code = main(["fetch", "--systems", "13Bus", "--dest", str(dest), "--base-url", server.url, "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "checksum mismatch" in err and "IEEE13Nodeckt_daily.dss" in err
    assert not (dest / "13Bus" / "IEEE13Nodeckt_daily.dss").exists()
    assert _leftovers(dest) == []


def test_dropped_connection_leaves_nothing(server, tmp_path):
    server.drop.add("13Bus/loadshape/LoadShape2.CSV")
    dest = tmp_path / "data"
    with pytest.raises(FetchError, match=r"(connection closed|network error)"):
        fetch(["13Bus"], dest, server.url, show_progress=False)
    assert not (dest / "13Bus" / "loadshape" / "LoadShape2.CSV").exists()
    assert _leftovers(dest) == []
    server.drop.clear()
    fetch(["13Bus"], dest, server.url, show_progress=False)  # a re-run completes it
    assert status(dest, ["13Bus"])["systems"]["13Bus"]["verified"] == 8


def test_http_error_and_network_error(server, tmp_path, capsys):
    # the reference copy here lacks 8500-Node/loadshape/bic_loadshape.csv: the server says 404
    code = main(["fetch", "--systems", "8500Node", "--dest", str(tmp_path / "d"), "--base-url", server.url,
                 "--quiet"])
    assert code == 1 and "HTTP 404" in capsys.readouterr().err
    with pytest.raises(FetchError, match="network error"):
        fetch(["13Bus"], tmp_path / "e", "http://127.0.0.1:9", timeout=2, show_progress=False)
    with pytest.raises(FetchError, match="unknown system"):
        fetch(["14Bus"], tmp_path / "f", server.url, show_progress=False)


def test_fetched_cache_is_found_without_settings(server, monkeypatch, capsys):
    monkeypatch.delenv("VVC_BATCH_DATA")
    with pytest.raises(vvc_batch.DataNotFoundError, match="vvc_batch.data fetch"):
        vvc_batch.make("34Bus")
    assert main(["fetch", "--systems", "13Bus", "34Bus", "--base-url", server.url, "--quiet"]) == 0
    env = vvc_batch.make("34Bus").unwrapped
    assert env.core.source.kind == "data" and env.num_profiles == 16
    # 13Bus now uses PowerGym's fetched files too, not the embedded model
    assert vvc_batch.make("13Bus").unwrapped.core.source.kind == "data"
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "13Bus" in out and "8/8 files verified (complete)" in out
    np.testing.assert_equal(vvc_batch.make("13Bus").unwrapped.num_profiles, 73)
