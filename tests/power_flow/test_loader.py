"""The loader reads a master file as OpenDSS's own compile would: files named relative to the
file naming them, NUL bytes, line endings, comments, commands with side effects left out,
refusals reported at the user's file and line, the working directory untouched."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.errors import DataNotFoundError, EngineError
from vvc_batch.power_flow.opendss.script import compile_script, read_master

CIRCUIT = """Clear
New Circuit.t basekV=4.16 pu=1.0 phases=3 bus1=src MVAsc3=200 MVAsc1=210
"""
LINES = """New LineCode.lc nphases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.8 units=km
New Line.l1 bus1=src bus2=b1 linecode=lc length=1 units=km
New Line.l2 bus1=b1 bus2=b2 linecode=lc length=1 units=km
New Line.l3 bus1=b2 bus2=b3 linecode=lc length=1 units=km
"""
LOADS = """New Load.ld2 bus1=b2 phases=3 kV=4.16 kW=900 kvar=300 model=1
New Load.ld3 bus1=b3 phases=3 kV=4.16 kW=600 kvar=250 model=1
Set VoltageBases=[4.16]
CalcVoltageBases
"""


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def _compile(master: Path):
    from dss import DSS

    ctx = DSS.NewContext()
    ctx.AllowChangeDir = False
    compile_script(ctx, read_master(master))
    return ctx


def _circuit(master: Path):
    ctx = _compile(master)
    c = ctx.ActiveCircuit
    assert c is not None
    return ctx, c


def _shape(c, name: str) -> np.ndarray:
    c.LoadShapes.Name = name
    return np.asarray(c.LoadShapes.Pmult)


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_crlf_and_lone_cr(tmp_path, newline):
    text = (CIRCUIT + LINES + LOADS).replace("\n", newline)
    _, c = _circuit(_write(tmp_path / "m.dss", text))
    assert sorted(c.AllBusNames) == ["b1", "b2", "b3", "src"]
    assert sorted(c.Loads.AllNames) == ["ld2", "ld3"]
    assert c.Lines.Count == 3


def test_nul_byte_at_end_of_redirected_file(tmp_path):
    _write(tmp_path / "lines.dss", LINES.encode() + b"\x00")
    master = _write(tmp_path / "m.dss", CIRCUIT + "redirect lines.dss\n" + LOADS)
    _, c = _circuit(master)
    # the lines after the redirect (same folder, so the same block) are all there
    assert sorted(c.Loads.AllNames) == ["ld2", "ld3"]
    assert c.NumBuses == 4
    c.SetActiveBus("b3")
    assert c.ActiveBus.kVBase == pytest.approx(4.16 / np.sqrt(3))


def test_data_files_resolve_against_the_naming_file(tmp_path, monkeypatch):
    defs = tmp_path / "defs"
    _write(defs / "shapes" / "ls1.csv", "0.5\n0.6\n0.7\n")
    _write(defs / "shapes" / "ls2.csv", "0.1\n0.2\n0.3\n")
    _write(tmp_path / "data" / "ls3.csv", "0.9\n0.8\n0.7\n")
    _write(tmp_path / "data" / "ls3h.csv", "hour,mult\n1,0.4\n2,0.3\n3,0.2\n")
    np.array([0.25, 0.5, 0.75], dtype=np.float32).tofile(defs / "shapes" / "ls4.sng")
    np.array([1.5, 1.25, 1.125], dtype=np.float64).tofile(defs / "shapes" / "ls5.dbl")
    _write(defs / "curves" / "xy.csv", "0.5,1.0\n1.0,0.8\n1.5,0.2\n")
    # decoys where a resolution against the master's folder or the cwd would look
    _write(tmp_path / "shapes" / "ls1.csv", "9\n9\n9\n")
    _write(tmp_path / "shapes" / "ls2.csv", "9\n9\n9\n")
    _write(defs / "shapes.dss", "\n".join([
        "New Loadshape.s1 npts=3 interval=1 mult=(file=shapes/ls1.csv)",
        r"New Loadshape.s2 npts=3 interval=1 mult=(file=shapes\ls2.csv)",
        r"New Loadshape.s3 npts=3 interval=1 csvfile=..\data\ls3.csv",
        "New Loadshape.s3b npts=3 interval=1 mult=(file=../data/ls3h.csv, col=2, header=yes)",
        "New Loadshape.s4 npts=3 interval=1 sngfile=shapes/ls4.sng",
        "New Loadshape.s5 npts=3 interval=1 mult=(dblfile=shapes/ls5.dbl)",
        "New XYCurve.xy npts=3 csvfile=curves/xy.csv",
    ]))
    master = _write(tmp_path / "main" / "m.dss", CIRCUIT + "redirect ../defs/shapes.dss\n" + LINES + LOADS)
    monkeypatch.chdir(tmp_path)
    _, c = _circuit(master)
    np.testing.assert_array_equal(_shape(c, "s1"), [0.5, 0.6, 0.7])
    np.testing.assert_array_equal(_shape(c, "s2"), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(_shape(c, "s3"), [0.9, 0.8, 0.7])
    np.testing.assert_array_equal(_shape(c, "s3b"), [0.4, 0.3, 0.2])
    np.testing.assert_array_equal(_shape(c, "s4"), [0.25, 0.5, 0.75])
    np.testing.assert_array_equal(_shape(c, "s5"), [1.5, 1.25, 1.125])
    c.XYCurves.Name = "xy"
    np.testing.assert_array_equal(c.XYCurves.Xarray, [0.5, 1.0, 1.5])
    np.testing.assert_array_equal(c.XYCurves.Yarray, [1.0, 0.8, 0.2])


def test_quoted_paths_with_spaces_and_windows_separators(tmp_path):
    _write(tmp_path / "my data" / "line defs.dss", LINES)
    _write(tmp_path / "my data" / "shape files" / "ls 1.csv", "0.3\n0.4\n0.5\n")
    _write(tmp_path / "my data" / "bus xy.csv", "src,0,0\nb1,1,0\nb2,2,0\nb3,3,1\n")
    master = _write(tmp_path / "m.dss", CIRCUIT + "\n".join([
        'redirect "my data\\line defs.dss"',
        "New Loadshape.q npts=3 interval=1 mult=(file=\"my data/shape files/ls 1.csv\")",
        LOADS,
        "BusCoords 'my data/bus xy.csv'",
    ]))
    _, c = _circuit(master)
    assert c.Lines.Count == 3
    np.testing.assert_array_equal(_shape(c, "q"), [0.3, 0.4, 0.5])
    c.SetActiveBus("b3")
    assert (c.ActiveBus.x, c.ActiveBus.y) == (3.0, 1.0)


def test_comments_case_and_abbreviations(tmp_path):
    text = CIRCUIT + "\n".join([
        "/* a block comment: none of this is run",
        "New Line.hidden bus1=src bus2=zz linecode=lc length=1",
        "*/",
        "REDIRECT lines.DSS   ! comment after the file name",
        "// a comment line",
        "sol",  # Solve, abbreviated: left out
        "NEW load.LD2 bus1=b2 phases=3 kV=4.16 kW=900 kvar=300 model=1",
        "more kW=456",
        "~ kvar=123",
        "Set VoltageBases=[4.16]",
        "calcv",
    ])
    _write(tmp_path / "lines.dss", LINES)
    _, c = _circuit(_write(tmp_path / "m.dss", text))
    assert "zz" not in c.AllBusNames and c.Lines.Count == 3
    c.Loads.Name = "ld2"
    assert (c.Loads.kW, c.Loads.kvar) == (456.0, 123.0)
    c.SetActiveBus("b1")
    assert c.ActiveBus.kVBase == pytest.approx(4.16 / np.sqrt(3))


def test_nothing_written_and_meters_disabled(tmp_path):
    noisy = "\n".join([
        "set mode=yearly number=8760 tolerance=0.5 maxiterations=2 controlmode=time",
        "New Monitor.m1 element=Line.l1 terminal=1",
        "New EnergyMeter.em element=Line.l1 terminal=1",
        "New RegControl.rc transformer=t1 winding=2 vreg=122 ptratio=20 debugtrace=yes",
        "New RegControl.rc2 transformer=t1 winding=2 vreg=121 ptratio=20 DebugT=Yes",  # abbreviated
        "solve", "show voltages", "export voltages", "plot profile", "save circuit",
        "DOScmd echo hi > written.txt", "set datapath=elsewhere", "cd sub",
    ])
    _write(tmp_path / "sub" / "keep.txt", "")
    xfmr = ("New Transformer.t1 phases=3 windings=2 buses=[b3 b4] conns=[wye wye] kVs=[4.16 4.16] "
            "kVAs=[5000 5000] XHL=0.1\n")
    plain = _write(tmp_path / "plain" / "m.dss", CIRCUIT + LINES + xfmr + LOADS)
    master = _write(tmp_path / "m.dss", CIRCUIT + LINES + xfmr + LOADS + noisy + "\n")
    before = sorted(p for p in tmp_path.rglob("*"))
    cwd = os.getcwd()
    ctx, c = _circuit(master)
    assert os.getcwd() == cwd
    assert sorted(p for p in tmp_path.rglob("*")) == before
    for element in ("Monitor.m1", "EnergyMeter.em"):
        c.SetActiveElement(element)
        assert c.ActiveCktElement.Enabled is False
    # mode=yearly number=8760 tolerance=0.5 maxiterations=2 controlmode=time were left out
    _, ref = _circuit(plain)
    settings = [(s.Mode, s.Number, s.MaxIterations, s.Tolerance, s.ControlMode, s.Hour)
                for s in (c.Solution, ref.Solution)]
    assert settings[0] == settings[1] and settings[0][3] == 1e-4


def test_cd_followed_without_changing_the_working_directory(tmp_path):
    _write(tmp_path / "sub" / "lines.dss", LINES)
    _write(tmp_path / "sub" / "shapes" / "ls.csv", "0.2\n0.4\n0.6\n")
    master = _write(tmp_path / "m.dss", CIRCUIT + "\n".join([
        "cd sub",
        "redirect lines.dss",
        "New Loadshape.c npts=3 interval=1 mult=(file=shapes/ls.csv)",
        LOADS,
    ]))
    cwd = os.getcwd()
    _, c = _circuit(master)
    assert os.getcwd() == cwd
    assert c.Lines.Count == 3
    np.testing.assert_array_equal(_shape(c, "c"), [0.2, 0.4, 0.6])


def test_compile_keeps_the_compiled_folder_redirect_does_not(tmp_path):
    _write(tmp_path / "a" / "lines.dss", LINES)
    _write(tmp_path / "a" / "ls.csv", "0.1\n0.2\n0.3\n")
    _write(tmp_path / "ls.csv", "0.7\n0.8\n0.9\n")
    head = CIRCUIT + "{} a/lines.dss\nNew Loadshape.c npts=3 interval=1 mult=(file=ls.csv)\n" + LOADS
    _, c = _circuit(_write(tmp_path / "r.dss", head.format("redirect")))
    np.testing.assert_array_equal(_shape(c, "c"), [0.7, 0.8, 0.9])
    _, c = _circuit(_write(tmp_path / "c.dss", head.format("compile")))
    np.testing.assert_array_equal(_shape(c, "c"), [0.1, 0.2, 0.3])


def test_refusal_names_the_users_file_and_line(tmp_path):
    _write(tmp_path / "sub" / "lines.dss", LINES.replace("New Line.l3 bus1=b2", "New Line.l3 bux=3 bus1=b2"))
    master = _write(tmp_path / "m.dss", CIRCUIT + "! a comment\n\nredirect sub/lines.dss\n" + LOADS)
    with pytest.raises(EngineError) as err:
        _compile(master)
    msg = str(err.value)
    assert f"{str(tmp_path / 'sub' / 'lines.dss')!r}, line 4" in msg
    assert "bux" in msg and "\n" not in msg and "user-provided" not in msg
    # a syntax error in the master itself, after a redirect
    _write(tmp_path / "sub" / "lines.dss", LINES)
    master = _write(tmp_path / "m.dss", CIRCUIT + "redirect sub/lines.dss\nNew Lood.x bus1=b2 kW=1\n")
    with pytest.raises(EngineError, match=r"m\.dss', line 4"):
        _compile(master)


def test_missing_redirect_names_the_redirecting_file_and_line(tmp_path):
    master = _write(tmp_path / "m.dss", CIRCUIT + "\nredirect nothere.dss\n")
    with pytest.raises(DataNotFoundError, match=r"m\.dss', line 4 redirects to 'nothere\.dss'"):
        read_master(master)


def _regulated_feeder(tmp_path: Path, extra: str) -> dict:
    text = CIRCUIT + "\n".join([
        "New Transformer.reg1 phases=3 windings=2 buses=[src b1x] conns=[wye wye] kVs=[4.16 4.16] "
        "kVAs=[5000 5000] XHL=0.1 %LoadLoss=0.01",
        "New RegControl.creg1 transformer=reg1 winding=2 vreg=122 band=2 ptratio=20",
        "New Line.l0 bus1=b1x bus2=src2 phases=3 r1=0.01 x1=0.01 r0=0.01 x0=0.01 length=1",
        LINES.replace("bus1=src", "bus1=src2"),
        "New Capacitor.cap3 bus1=b3 phases=3 kvar=300 kV=4.16",
        LOADS,
        extra,
    ])
    folder = tmp_path / ("noisy" if extra else "plain")
    _write(folder / "m.dss", text)
    return {"name": "Loader" + folder.name, "master": str(folder / "m.dss"), "profiles": "synthetic"}


@pytest.mark.parametrize("backend", ["opendss", "batched"])
def test_study_commands_do_not_change_the_environment(tmp_path, backend):
    noisy = "\n".join([
        "set mode=yearly number=8760 stepsize=1h tolerance=0.5 maxiterations=3 controlmode=time",
        "set algorithm=newton loadmult=1.0",
        "New Monitor.m1 element=Line.l1 terminal=1 mode=0",
        "New EnergyMeter.em element=Line.l1 terminal=1",
        "solve", "show voltages", "export voltages", "plot profile", "visualize currents Line.l1",
        "Solve mode=daily number=24", "sample", "closedi",
    ])
    envs = [vvc_batch.make_from_spec(_regulated_feeder(tmp_path, extra), backend=backend)
            for extra in ("", noisy)]
    traj = []
    for env in envs:
        obs, _ = env.reset(seed=3)
        env.action_space.seed(5)
        steps = [obs]
        for _ in range(6):
            obs, reward, *_ = env.step(env.action_space.sample())
            steps.append(np.append(obs, reward))
        traj.append(steps)
        env.close()
    for a, b in zip(*traj):
        np.testing.assert_array_equal(a, b)
    assert len(traj[0][0]) > 4 and np.ptp(traj[0][1][:-1]) > 0
