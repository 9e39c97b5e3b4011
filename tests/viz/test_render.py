"""Pictures: colours by voltage, frames per step, layouts with and without coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vvc_batch
import vvc_batch.env.single_env
from vvc_batch.viz import plot
from vvc_batch.viz.render import FeederRenderer

TINY = Path(__file__).parents[1] / "feeders" / "tiny" / "tiny.json"


def _voltages(core, values: dict[str, float]) -> np.ndarray:
    v = np.ones(core.num_nodes)
    for bus, x in values.items():
        for i, n in enumerate(core.node_names):
            if n.split(".")[0] == bus:
                v[i] = x
    return v


def _close(a, b, tol=3) -> bool:
    return bool(np.all(np.abs(np.asarray(a, int) - np.asarray(b, int)) <= tol))


def test_colours_follow_voltages():
    env = vvc_batch.make("13Bus").unwrapped
    env.reset(seed=0)
    r = FeederRenderer(env.core)
    try:
        over, under, normal = "634", "652", "645"
        frame = r.draw(_voltages(env.core, {over: 1.06, under: 0.94}), [1, 1], [16] * 3, [1.0], "test")
        assert frame.dtype == np.uint8 and frame.ndim == 3
        assert _close(frame[r.pixel_of(over)], r.color_of(1.05))   # beyond the range: the end colour
        assert _close(frame[r.pixel_of(under)], r.color_of(0.95))
        assert _close(frame[r.pixel_of(normal)], r.color_of(1.0))
        red, blue = frame[r.pixel_of(over)].astype(int), frame[r.pixel_of(under)].astype(int)
        assert red[0] > red[2] + 50 and blue[2] > blue[0] + 50  # over red, under blue
        other = r.draw(_voltages(env.core, {over: 0.97, under: 1.03}), [1, 1], [16] * 3, [1.0], "test")
        assert not np.array_equal(frame[r.pixel_of(over)], other[r.pixel_of(over)])
        assert not np.array_equal(frame[r.pixel_of(under)], other[r.pixel_of(under)])
        maxi = FeederRenderer(env.core, node_bound="maximum")
        v = _voltages(env.core, {})
        v[env.core.node_names.index("634.1")] = 1.06  # one phase high: maximum shows it, minimum not
        assert _close(maxi.draw(v, [1, 1], [16] * 3, [1.0], "")[maxi.pixel_of("634")], maxi.color_of(1.05))
        assert _close(r.draw(v, [1, 1], [16] * 3, [1.0], "")[r.pixel_of("634")], r.color_of(1.0))
        maxi.close()
    finally:
        r.close()


def test_render_modes():
    env = vvc_batch.make("13Bus", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.shape[2] == 3 and frame.shape[0] > 100
    with pytest.raises(ValueError, match="render_mode"):
        vvc_batch.env.single_env.VVCEnv("13Bus", render_mode="video")
    plain = vvc_batch.make("13Bus")
    plain.reset(seed=0)
    assert plain.render() is None


def test_gif_has_one_frame_per_step(tmp_path):
    env = vvc_batch.make("13Bus")
    traj = plot.episode_gif(env, "random", tmp_path / "e.gif", profile=2, frames_dir=tmp_path / "frames")
    with Image.open(tmp_path / "e.gif") as im:
        assert im.n_frames == 24
    assert len(list((tmp_path / "frames").glob("*.png"))) == 24
    assert traj["v"].shape == (25, 41) and traj["reward"].shape == (25,)
    fig = plot.daily_profile(traj)
    assert len(fig.axes) == 4
    fig.savefig(tmp_path / "day.png")
    plot.feeder_map(env).savefig(tmp_path / "layout.png")
    assert (tmp_path / "day.png").stat().st_size > 1000 and (tmp_path / "layout.png").stat().st_size > 1000


def test_circuit_without_coordinates_renders():
    env = vvc_batch.make_from_spec(TINY, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.shape[2] == 3
    r = env._renderer
    assert np.isfinite(r.pos).all() and len({tuple(p) for p in r.pos.round(6)}) == len(r.bus_names)


def test_pv_inverters_drawn_by_reactive_power():
    """13Bus_pv: a filled marker beside each inverter's bus, coloured by its kvar / kVA
    (brown absorbing, green injecting), a legend entry and a label; the bus keeps its
    voltage colour; a frame of the environment shows the observation's reactive powers."""
    env = vvc_batch.make("13Bus_pv", backend="batched", render_mode="rgb_array", profiles="synthetic").unwrapped
    env.reset(seed=0, options={"profile": 171})
    r = FeederRenderer(env.core)
    try:
        assert r.pv_scatter is not None and len(r._pv_pos) == 4
        assert "PV inverters (colour: kvar / kVA)" in [t.get_text() for t in r.ax.get_legend().get_texts()]
        q = [1.0, -1.0, 0.0, 0.4]
        frame = r.draw(_voltages(env.core, {"675": 1.06}), [1, 1], [16] * 3, [1.0], "pv", pv_q=q)
        for i, x in enumerate(q):
            assert _close(frame[r.pv_pixel(i)], r.pv_color_of(x), tol=4), (i, frame[r.pv_pixel(i)])
        green, brown = r.pv_color_of(1.0), r.pv_color_of(-1.0)
        assert green[1] > green[0] + 50 and brown[0] > brown[2] + 50
        assert _close(frame[r.pixel_of("675")], r.color_of(1.05))  # the bus beside the marker keeps its colour
        assert [t.get_text() for t in r.device_texts[-4:]] == ["q +1.00", "q -1.00", "q +0.00", "q +0.40"]
        other = r.draw(_voltages(env.core, {}), [1, 1], [16] * 3, [1.0], "pv", pv_q=[-1.0, 1.0, 0.0, 0.4])
        assert not np.array_equal(frame[r.pv_pixel(0)], other[r.pv_pixel(0)])
        with pytest.raises(ValueError, match="one entry per PV inverter \\(4\\), got 3"):
            r.draw(_voltages(env.core, {}), [1, 1], [16] * 3, [1.0], "pv", pv_q=[0.0] * 3)
        act = (np.array([1, 1, 16, 16, 16, 16]), np.array([1.0, -1.0, 0.0, 0.0], dtype=np.float32))
        for _ in range(8):  # hour 7: p below the rating, so q = fraction * sqrt(1 - p^2) is not 0
            obs, *_ = env.step(act)
        frame = env.render()
        lay = env.core.obs_layout
        qs = obs[lay.pv_q]
        assert qs[0] > 0.5 and qs[1] < -0.5
        got = env._renderer
        assert _close(frame[got.pv_pixel(0)], got.pv_color_of(qs[0]), tol=4)
        assert _close(frame[got.pv_pixel(1)], got.pv_color_of(qs[1]), tol=4)
    finally:
        r.close()
        env.close()
