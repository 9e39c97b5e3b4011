"""Missing data give errors that name the path and say how to provide it."""

from __future__ import annotations

import shutil

import pytest

import vvc_batch


def test_no_data_configured(monkeypatch):
    """Without a data directory only the embedded 13Bus model is available."""
    monkeypatch.delenv("VVC_BATCH_DATA", raising=False)
    with pytest.raises(vvc_batch.DataNotFoundError, match="VVC_BATCH_DATA"):
        vvc_batch.make("34Bus")
    assert vvc_batch.make("13Bus").unwrapped.core.source.kind == "embedded"


def test_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere") as exc:
        vvc_batch.make("13Bus", data_dir=missing)
    assert "data_dir" in str(exc.value)


def test_env_var_pointing_nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv("VVC_BATCH_DATA", str(tmp_path / "gone"))
    with pytest.raises(vvc_batch.DataNotFoundError, match="gone"):
        vvc_batch.make("34Bus")


def test_missing_master_file(tmp_path):
    (tmp_path / "13Bus").mkdir()
    with pytest.raises(vvc_batch.DataNotFoundError, match="IEEE13Nodeckt_daily.dss"):
        vvc_batch.make("13Bus", data_dir=tmp_path)


def test_missing_redirected_file(tmp_path, data_dir):
    shutil.copytree(data_dir / "13Bus", tmp_path / "13Bus")
    (tmp_path / "13Bus" / "IEEELineCodes.dss").unlink()
    with pytest.raises(vvc_batch.DataNotFoundError, match="IEEELineCodes.dss"):
        vvc_batch.make("13Bus", data_dir=tmp_path)


def test_missing_battery_file_falls_back_to_the_spec(tmp_path, data_dir):
    """Without the data directory's Battery.csv the ratings come from circuits/13Bus.json."""
    shutil.copytree(data_dir / "13Bus", tmp_path / "13Bus")
    (tmp_path / "13Bus" / "Battery.csv").unlink()
    bank = vvc_batch.make("13Bus", data_dir=tmp_path).unwrapped.core.batteries
    assert (bank.names, bank.max_kw, bank.max_kwh, bank.initial_kwh) == (("batt1",), (200.0,), (1000.0,), (1000.0,))


def test_data_dir_argument_overrides_env(monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv("VVC_BATCH_DATA", str(tmp_path / "gone"))
    env = vvc_batch.make("13Bus", data_dir=data_dir)
    assert env.reset(seed=0)[0].shape == (48,)
